"""One error base carrying an HTTP status and a stable code, rendered by one handler."""

from __future__ import annotations

from typing import Any


class RappitError(Exception):
    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class ConfigurationError(RappitError):
    status_code = 500
    code = "configuration_error"


class NotFound(RappitError):
    status_code = 404
    code = "not_found"


class Unauthorized(RappitError):
    status_code = 401
    code = "unauthorized"


class Forbidden(RappitError):
    status_code = 403
    code = "forbidden"


class Conflict(RappitError):
    status_code = 409
    code = "conflict"


class InvalidInput(RappitError):
    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(RappitError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(RappitError):
    status_code = 415
    code = "unsupported_media_type"


class BadRequest(RappitError):
    """Malformed at the protocol level (headers, body encoding): 400, unlike a well-formed
    request with invalid values (422)."""

    status_code = 400
    code = "bad_request"
