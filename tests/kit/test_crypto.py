import pytest

from rappit.kit.crypto import SecretBox, sha256_hex
from rappit.kit.errors import ConfigurationError


def test_round_trip() -> None:
    box = SecretBox("key-one-0123456789")
    value = {"access_token": "shpat_0123456789abcdef", "nested": {"n": 1}}
    token = box.encrypt_json(value)
    assert "shpat_" not in token
    assert box.decrypt_json(token) == value


def test_same_value_encrypts_differently_each_time() -> None:
    box = SecretBox("key-one-0123456789")
    assert box.encrypt_json({"a": 1}) != box.encrypt_json({"a": 1})


def test_a_box_with_another_key_cannot_decrypt() -> None:
    token = SecretBox("key-one-0123456789").encrypt_json({"a": 1})
    with pytest.raises(ConfigurationError, match="RAPPIT_SECRET_KEY differs"):
        SecretBox("key-two-0123456789").decrypt_json(token)


def test_tampered_token_is_refused() -> None:
    box = SecretBox("key-one-0123456789")
    token = box.encrypt_json({"a": 1})
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(ConfigurationError):
        box.decrypt_json(tampered)


def test_sha256_hex() -> None:
    assert sha256_hex("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
