"""All channel SQL. Every query filters on the organisation, except the one lookup by shop
domain that decides which organisation an incoming webhook belongs to."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.sql import add_unique
from rappit.models import Channel, ChannelLocation, Warehouse


class ChannelRepository:
    def __init__(self, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id

    async def add(self, instance: Channel | ChannelLocation, conflict: Exception) -> None:
        await add_unique(self.session, instance, conflict)

    async def get(self, channel_id: uuid.UUID) -> Channel | None:
        return await self.session.scalar(
            select(Channel).where(
                Channel.organization_id == self.organization_id, Channel.id == channel_id
            )
        )

    def channels(self) -> Select[Channel]:
        return select(Channel).where(Channel.organization_id == self.organization_id)

    def locations(self, channel_id: uuid.UUID) -> Select[ChannelLocation]:
        return select(ChannelLocation).where(
            ChannelLocation.organization_id == self.organization_id,
            ChannelLocation.channel_id == channel_id,
        )

    async def location(
        self, channel_id: uuid.UUID, external_location_id: str
    ) -> ChannelLocation | None:
        return await self.session.scalar(
            self.locations(channel_id).where(
                ChannelLocation.external_location_id == external_location_id
            )
        )

    async def warehouse_codes(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        ids = set(ids)
        if not ids:
            return {}
        rows = await self.session.execute(
            select(Warehouse.id, Warehouse.code).where(
                Warehouse.organization_id == self.organization_id, Warehouse.id.in_(ids)
            )
        )
        return {row[0]: row[1] for row in rows}


async def channel_by_shop_domain(
    session: AsyncSession, channel_type: str, shop_domain: str
) -> Channel | None:
    # Deliberately not scoped by organisation: an incoming webhook names only its shop, and
    # this lookup is what tells which organisation it belongs to. The (type, shop_domain)
    # unique index makes the answer unambiguous across the deployment.
    return await session.scalar(
        select(Channel).where(Channel.type == channel_type, Channel.shop_domain == shop_domain)
    )
