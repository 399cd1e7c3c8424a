"""Which channel an incoming webhook belongs to, without a database read per delivery.

A webhook names only its shop; the channel row says which organisation that is and which
secrets sign its deliveries. Reading (and decrypting) that for every delivery cost more than
recording the delivery itself, so each process keeps what it read for a short while
(``ttl_s``). What that could get wrong is bounded:

- a secret rotated since: a delivery signed with the new secret fails against the kept ones,
  and the caller then asks again with ``fresh=True`` (a database read) before refusing;
- a previous secret dropped since: still accepted by this process for at most ``ttl_s``;
- a shop unknown: never kept, every such delivery reads the database (and is refused).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.channels.service import credentials_of, get_channel_by_shop_domain
from rappit.kit.crypto import SecretBox
from rappit.models import ChannelType


@dataclass(frozen=True, repr=False)
class ShopRoute:
    channel_id: uuid.UUID
    organization_id: uuid.UUID
    webhook_secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return f"ShopRoute(channel_id={self.channel_id}, organization_id={self.organization_id})"


@dataclass
class ShopRoutes:
    sessionmaker: async_sessionmaker[AsyncSession]
    secret_box: SecretBox
    ttl_s: float = 10.0
    _kept: dict[tuple[str, str], tuple[float, ShopRoute]] = field(default_factory=dict)
    # One read per shop at a time: when the kept route expires under load, the deliveries
    # arriving meanwhile wait for that read instead of each opening a connection of its own.
    _reading: dict[tuple[str, str], asyncio.Future[ShopRoute | None]] = field(default_factory=dict)

    async def get(
        self, channel_type: ChannelType, shop_domain: str, *, fresh: bool = False
    ) -> ShopRoute | None:
        key = (channel_type.value, shop_domain.strip().lower())
        if fresh:
            # Not joined to a read under way: that one may have started before the change
            # the caller needs to see (a secret rotated a moment ago).
            return await self._read(key, channel_type, shop_domain)
        kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.ttl_s:
            return kept[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(key, channel_type, shop_domain))
            self._reading[key] = reading
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    async def _read(
        self, key: tuple[str, str], channel_type: ChannelType, shop_domain: str
    ) -> ShopRoute | None:
        started = time.monotonic()
        async with self.sessionmaker() as session:
            channel = await get_channel_by_shop_domain(session, channel_type, shop_domain)
            if channel is None:
                self._kept.pop(key, None)
                return None
            route = ShopRoute(
                channel_id=channel.id,
                organization_id=channel.organization_id,
                webhook_secrets=credentials_of(channel, self.secret_box).webhook_secrets,
            )
        self._kept[key] = (started, route)
        return route

    def forget(self, channel_type: ChannelType, shop_domain: str) -> None:
        self._kept.pop((channel_type.value, shop_domain.strip().lower()), None)
