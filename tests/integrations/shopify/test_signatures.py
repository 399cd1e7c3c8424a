from __future__ import annotations

import pytest

from rappit.integrations.shopify.signatures import sign, verify

BODY = b'{"id":1}'
# Vector from reference/channel-apis.md Appendix A.
SIGNATURE = "Y92rNNpYOOODVF6ckLQPdKTj2qvF3ZqNSaUYda1LJBg="


def test_known_vector() -> None:
    assert sign(BODY, "s3cret") == SIGNATURE
    assert verify(BODY, SIGNATURE, ["s3cret"]) is True


def test_previous_secret_still_verifies_during_a_rotation() -> None:
    assert verify(BODY, SIGNATURE, ["new-secret", "s3cret"]) is True


@pytest.mark.parametrize(
    ("body", "header", "secrets"),
    [
        (BODY, SIGNATURE, ["other"]),
        (b'{"id": 1}', SIGNATURE, ["s3cret"]),  # re-serialised body: different bytes
        (BODY, None, ["s3cret"]),
        (BODY, "", ["s3cret"]),
        (BODY, "not base64 !!", ["s3cret"]),
        (BODY, "c2hvcnQ=", ["s3cret"]),  # valid base64, wrong length
        (BODY, "é", ["s3cret"]),  # non-ASCII header must not raise
        (BODY, SIGNATURE, []),
        (BODY, SIGNATURE, [""]),
    ],
)
def test_invalid_signatures(body: bytes, header: str | None, secrets: list[str]) -> None:
    assert verify(body, header, secrets) is False
