"""Encryption of secrets at rest (channel tokens, webhook secrets, carrier keys).

The Fernet key is derived from ``RAPPIT_SECRET_KEY`` with HKDF, so one configured secret serves
every purpose without reusing the same bytes for two of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rappit.kit.errors import ConfigurationError

_CREDENTIALS_INFO = b"rappit/credentials/v1"


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_CREDENTIALS_INFO
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt_json(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode()).decode()

    def decrypt_json(self, token: str) -> dict[str, Any]:
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ConfigurationError(
                "stored credentials cannot be decrypted: RAPPIT_SECRET_KEY differs from the key "
                "they were written with"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigurationError("stored credentials are not a JSON object")
        return data


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
