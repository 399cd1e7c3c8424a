"""Logging setup with a last line of defence against secrets in log output."""

from __future__ import annotations

import logging
import re

# API keys, bearer tokens and Shopify tokens (shpat_/shpca_/shppa_/shpss_) are never logged on
# purpose; this filter catches them if a library or an exception message does.
_SECRET_PATTERNS = [
    re.compile(r"rpt_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"shp(?:at|ca|pa|ss)_[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
]


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
