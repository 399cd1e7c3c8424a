"""API keys: generated once, stored as SHA-256, checked on every request."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.crypto import sha256_hex
from rappit.kit.errors import Unauthorized
from rappit.kit.types import utcnow
from rappit.models import ApiKey

KEY_PREFIX = "rpt_"


@dataclass(frozen=True)
class AuthContext:
    organization_id: uuid.UUID
    api_key_id: uuid.UUID
    is_admin: bool


async def create_api_key(
    session: AsyncSession, organization_id: uuid.UUID, *, name: str, is_admin: bool = False
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never retrievable again."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(
        organization_id=organization_id,
        name=name,
        prefix=plaintext[:12],
        key_hash=sha256_hex(plaintext),
        is_admin=is_admin,
    )
    session.add(api_key)
    await session.flush()
    return api_key, plaintext


async def authenticate(session: AsyncSession, plaintext: str) -> AuthContext:
    # Keys are 256-bit random tokens, so an unsalted SHA-256 lookup is safe and O(1).
    api_key = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == sha256_hex(plaintext), ApiKey.revoked_at.is_(None))
    )
    if api_key is None:
        raise Unauthorized("API key is not valid")
    api_key.last_used_at = utcnow()
    return AuthContext(
        organization_id=api_key.organization_id, api_key_id=api_key.id, is_admin=api_key.is_admin
    )
