"""Marking the channel levels a stock change must reach, in the transaction that changed it.

A change of a level's ``available`` (adjust, reserve, release, consume, an import's
reservations) marks every (channel, SKU, channel location) that shows that level: the SKU is
listed on the channel with an inventory item, the channel location maps to the level's
warehouse, Rappit is the stock master there, and the channel is active. That is one set-based
statement per change (``INSERT … SELECT … ON CONFLICT DO UPDATE``), rolled back with the
change if the transaction fails.

After the commit, a push job is sent for each channel that got a *new* mark, or a mark a push
is working on right now (``tasks.push_job``: one job id per channel and debounce window, so a
burst of changes shares one job). A mark that was already waiting has its job already, so a
hot SKU costs one upsert per change and no Redis call. A send that fails loses nothing: the
mark stays, and the sweeper sends its job again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import Insert, and_, bindparam, exists, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.inventory.tasks import DEFAULT_DEBOUNCE_MS, now_ms, push_job
from rappit.kit.db import after_commit, dialect_of
from rappit.kit.types import UtcDateTime, utcnow
from rappit.models import (
    Base,
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelStatus,
    InventoryPushMark,
    StockLevel,
    StockMaster,
)
from rappit.queues.client import QueueClient
from rappit.queues.enqueue import SESSION_QUEUE_KEY, send_buffered

# Session info keys: the debounce the runtime configured, and this transaction's sender.
DEBOUNCE_KEY = "inventory_push_debounce_ms"
_SENDER_KEY = "inventory_push_sender"


@cache
def _mark_statement(dialect: str) -> Insert:
    """Built once per dialect: this runs with every stock change."""
    mark = Base.metadata.tables[InventoryPushMark.__tablename__]
    shown_at = (
        select(
            StockLevel.organization_id,
            ChannelLocation.channel_id,
            StockLevel.sku_id,
            ChannelLocation.id,
            literal(1),
            bindparam("now", type_=UtcDateTime()),
        )
        .select_from(StockLevel)
        .join(
            ChannelLocation,
            and_(
                ChannelLocation.organization_id == StockLevel.organization_id,
                ChannelLocation.warehouse_id == StockLevel.warehouse_id,
                ChannelLocation.stock_master == StockMaster.RAPPIT.value,
            ),
        )
        .join(
            Channel,
            and_(
                Channel.id == ChannelLocation.channel_id,
                Channel.status == ChannelStatus.ACTIVE.value,
            ),
        )
        .where(
            StockLevel.organization_id == bindparam("org_id"),
            StockLevel.id.in_(bindparam("level_ids", expanding=True)),
            exists().where(
                ChannelListing.organization_id == StockLevel.organization_id,
                ChannelListing.channel_id == ChannelLocation.channel_id,
                ChannelListing.sku_id == StockLevel.sku_id,
                ChannelListing.external_inventory_item_id.is_not(None),
            ),
        )
        # Rows in key order: two transactions marking overlapping sets lock them alike.
        .order_by(ChannelLocation.channel_id, StockLevel.sku_id, ChannelLocation.id)
    )
    insert = postgresql.insert(mark) if dialect == "postgresql" else sqlite.insert(mark)
    statement = insert.from_select(
        ["organization_id", "channel_id", "sku_id", "channel_location_id", "version", "marked_at"],
        shown_at,
    )
    # marked_at stays the time the level became due: a SKU changing every second must not
    # look fresh to the sweeper forever.
    return statement.on_conflict_do_update(
        index_elements=["channel_id", "sku_id", "channel_location_id"],
        set_={"version": mark.c.version + 1},
    ).returning(mark.c.channel_id, mark.c.version, mark.c.claimed_by)


async def mark_levels(
    session: AsyncSession, organization_id: uuid.UUID, level_ids: Sequence[uuid.UUID]
) -> None:
    """Mark the channel levels that show these stock levels (just changed) as due for a push,
    and have their channels' push jobs sent after the commit."""
    if not level_ids:
        return
    rows = await session.execute(
        _mark_statement(dialect_of(session)),
        {"org_id": organization_id, "level_ids": list(level_ids), "now": utcnow()},
    )
    # version 1: a new mark; claimed: a push is on it and will go round again, but a job that
    # finished its last round just now would leave it behind.
    channels = {
        channel_id for channel_id, version, claimed_by in rows if version == 1 or claimed_by
    }
    if channels:
        request_push(session, organization_id, channels)


@dataclass(eq=False)
class _Sender:
    """Sends the push jobs of one transaction after it committed. The job ids are worked out
    at send time, not at marking time: a window whose job has already run must not be asked
    for again by a commit that came late."""

    client: QueueClient
    debounce_ms: int
    channels: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)

    async def __call__(self) -> None:
        current = now_ms()
        requests = [
            push_job(org, channel, now_ms=current, debounce_ms=self.debounce_ms)
            for org, channel in sorted(self.channels)
        ]
        await send_buffered(self.client, requests)


def request_push(
    session: AsyncSession, organization_id: uuid.UUID, channel_ids: set[uuid.UUID]
) -> None:
    """Have a push job sent for these channels once the session's transaction commits."""
    client = session.info.get(SESSION_QUEUE_KEY)
    if not isinstance(client, QueueClient):
        # A process without a queue (a CLI command, a bare test session): the marks are
        # committed all the same, and the sweeper sends their jobs.
        return
    info: dict[str, Any] = session.info
    sender = info.get(_SENDER_KEY)
    if not isinstance(sender, _Sender) or sender not in info.get("after_commit", []):
        # The first request of this transaction (an earlier one's sender has run, or was
        # dropped with a rollback).
        sender = _Sender(client, int(info.get(DEBOUNCE_KEY) or DEFAULT_DEBOUNCE_MS))
        info[_SENDER_KEY] = sender
        after_commit(session, sender)
    sender.channels.update((organization_id, channel_id) for channel_id in channel_ids)
