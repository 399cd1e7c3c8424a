"""Request-body helpers for endpoints that must see the raw bytes (signed webhooks)."""

from __future__ import annotations

from fastapi import Request

from rappit.kit.errors import BadRequest, PayloadTooLarge


async def read_body_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing anything over ``limit`` bytes: by the declared length before
    reading, and while streaming for senders that declare none (or declare too little)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"body over the {limit} byte limit")
        except ValueError as exc:
            raise BadRequest("Content-Length is not a number") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
