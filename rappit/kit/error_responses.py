"""The error body every admin API route may answer with, as the OpenAPI schema documents it.

Every refusal has the same shape (``rappit.app`` turns each ``RappitError`` and each
validation failure into it), so clients and schema-driven tests can rely on the document:
``{"error": <code>, "detail": <text>}`` plus, for validation failures, ``fields``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    # Some errors carry more (the short lines of an allocation, a conflicting id).
    model_config = ConfigDict(extra="allow")

    error: str
    detail: str
    fields: list[FieldError] | None = None


_DESCRIPTIONS = {
    400: "The request is malformed (a header, a cursor, a body that is not what it says).",
    401: "No API key, or one that is unknown or revoked.",
    403: "The API key may not do this.",
    404: "No such resource in this organisation.",
    409: "The request conflicts with the current state (a duplicate, a state that forbids it).",
    422: "The input is invalid; `fields` says where.",
    502: "The channel's API refused the call or could not be reached.",
    503: "A service Rappit depends on (the queue) cannot be reached right now.",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in _DESCRIPTIONS.items()
}
