import io
import logging
from collections.abc import Iterator

import pytest

from rappit.kit.logging import (
    LOG_FORMAT,
    RedactingFilter,
    RedactingFormatter,
    configure_logging,
    redact,
)

API_KEY = "rpt_Abc123-_xyzXYZ0987654321"
SHOPIFY_TOKEN = "shpat_0123456789abcdef0123456789abcdef"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.kit.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_redact() -> None:
    assert redact(f"key {API_KEY} here") == "key [REDACTED] here"
    assert redact(f"token={SHOPIFY_TOKEN}") == "token=[REDACTED]"
    assert redact("Authorization: Bearer abc.DEF-ghi_123") == "Authorization: Bearer [REDACTED]"
    assert redact("authorization: bearer abcdefgh1234") == "authorization: bearer [REDACTED]"
    assert redact(f"Bearer {API_KEY}") == "Bearer [REDACTED]"
    for token in ("shpca_0123456789ab", "shppa_0123456789ab", "shpss_0123456789ab"):
        assert redact(token) == "[REDACTED]"


def test_ordinary_text_is_left_alone() -> None:
    text = "order #1001 for sku rpt_x, bearer of news, shpat_ short"
    assert redact(text) == text


def test_filter_redacts_messages_and_arguments(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("created key %s for %s", API_KEY, "Acme")
    logger.warning(f"shopify said no to {SHOPIFY_TOKEN}")
    logger.error("request had %r", {"Authorization": "Bearer abcdefgh12345678"})

    lines = stream.getvalue().splitlines()
    assert lines == [
        "INFO created key [REDACTED] for Acme",
        "WARNING shopify said no to [REDACTED]",
        "ERROR request had {'Authorization': 'Bearer [REDACTED]'}",
    ]


def test_tracebacks_are_redacted_too(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise RuntimeError(f"401 for Authorization: Bearer {API_KEY}")
    except RuntimeError:
        logger.exception("call failed")

    output = stream.getvalue()
    assert "call failed" in output
    assert "RuntimeError: 401 for Authorization: Bearer [REDACTED]" in output
    assert "rpt_" not in output


def test_configure_logging_installs_the_redacting_handler() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("warning")
        (handler,) = root.handlers
        assert root.level == logging.WARNING
        # One redaction per line, in the formatter (it covers tracebacks too).
        assert handler.filters == []
        assert isinstance(handler.formatter, RedactingFormatter)
        assert handler.formatter._fmt == LOG_FORMAT
    finally:
        root.handlers = saved[0]
        root.setLevel(saved[1])
