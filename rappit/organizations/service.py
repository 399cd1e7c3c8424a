from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rappit.auth.service import create_api_key
from rappit.kit.errors import InvalidInput
from rappit.models import Organization


async def create_organization(session: AsyncSession, name: str) -> tuple[Organization, str]:
    """Create an organisation with its first (admin) API key; returns the key's plaintext."""
    name = name.strip()
    if not name:
        raise InvalidInput("organization name must not be empty")
    organization = Organization(name=name)
    session.add(organization)
    await session.flush()
    _, plaintext = await create_api_key(session, organization.id, name="initial", is_admin=True)
    return organization, plaintext
