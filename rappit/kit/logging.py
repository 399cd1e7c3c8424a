"""Logging setup with a last line of defence against secrets in log output."""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

# API keys, bearer tokens and Shopify tokens (shpat_/shpca_/shppa_/shpss_) are never logged on
# purpose; this filter catches them if a library or an exception message does.
_SECRET = re.compile(
    r"rpt_[A-Za-z0-9_\-]{8,}"
    r"|shp(?:at|ca|pa|ss)_[A-Za-z0-9]{8,}"
    r"|((?i:bearer)\s+)[A-Za-z0-9._\-]{8,}"
)
# Every secret shape contains one of these; most lines contain none and skip the regex.
_MARKERS = ("rpt_", "shp", "earer", "EARER")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str) -> str:
    if not any(marker in text for marker in _MARKERS):
        return text
    return _SECRET.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)


class RedactingFilter(logging.Filter):
    """Redacts the message of every record that passes the handler it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted line, traceback included: an exception's message (an HTTP
    error echoing a request header, say) reaches the output without passing through
    ``record.msg``, so the filter alone would miss it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``dictConfig`` for the root logger, also handed to uvicorn: uvicorn applies it in each
    worker process it spawns, so every process redacts the same way."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # The formatter redacts the whole line once (message and traceback alike).
        "formatters": {"default": {"()": RedactingFormatter, "fmt": LOG_FORMAT}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        # uvicorn's loggers carry no handlers of their own and propagate to the root handler.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))
