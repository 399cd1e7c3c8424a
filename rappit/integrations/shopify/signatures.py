"""Shopify webhook signatures: ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the raw
request body, keyed with the app's secret (reference/channel-apis.md §1.2, Appendix A)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence


def sign(raw_body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()).decode()


def verify(raw_body: bytes, header_value: str | None, secrets: Sequence[str]) -> bool:
    """True when the header is the signature of these exact bytes under one of ``secrets``
    (current first, then the previous one during a rotation).

    The header is decoded to bytes and compared as bytes in constant time; a missing or
    malformed header is simply not valid (never an exception).
    """
    if not header_value:
        return False
    try:
        received = base64.b64decode(header_value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    for secret in secrets:
        if not secret:
            continue
        expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
        if hmac.compare_digest(expected, received):
            return True
    return False
