"""Marking the channel levels a stock change must reach, in the transaction that changed it.

A change of a level's ``available`` (an adjustment, a reservation, a release, an import's
reservations; a consumption lowers on hand and reserved alike and leaves it) marks every
(channel, SKU, channel location) that shows that level: the SKU is
listed on the channel with an inventory item, the channel location maps to the level's
warehouse, Rappit is the stock master there, and the channel is active. That is one set-based
statement per change (``INSERT … SELECT … ON CONFLICT DO UPDATE``; on PostgreSQL part of the
stock UPDATE itself, ``change_and_mark``), rolled back with the change if the transaction
fails.

After the commit, a push job is sent for each channel that got a *new* mark, or a mark a push
is working on right now (``tasks.push_job``: one job id per channel and debounce window, so a
burst of changes shares one job). A mark that was already waiting has its job already, so a
hot SKU costs one upsert per change and no Redis call. A send that fails loses nothing: the
mark stays, and the sweeper sends its job again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, Update, and_, bindparam, exists, literal, select, true
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


_MARK_COLUMNS = [
    "organization_id",
    "channel_id",
    "sku_id",
    "channel_location_id",
    "version",
    "marked_at",
]


def _marks_of(levels: Any, *conditions: Any, dialect: str) -> Insert:
    """``INSERT … SELECT … ON CONFLICT DO UPDATE`` of the marks that show the stock rows
    ``levels`` (the stock_levels table, or the rows an UPDATE just changed: anything with
    organization_id, sku_id and warehouse_id), returning each mark's channel, version and
    claim."""
    mark = Base.metadata.tables[InventoryPushMark.__tablename__]
    shown_at = (
        select(
            levels.c.organization_id,
            ChannelLocation.channel_id,
            levels.c.sku_id,
            ChannelLocation.id,
            literal(1),
            bindparam("now", type_=UtcDateTime()),
        )
        .select_from(levels)
        .join(
            ChannelLocation,
            and_(
                ChannelLocation.organization_id == levels.c.organization_id,
                ChannelLocation.warehouse_id == levels.c.warehouse_id,
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
            *conditions,
            exists().where(
                ChannelListing.organization_id == levels.c.organization_id,
                ChannelListing.channel_id == ChannelLocation.channel_id,
                ChannelListing.sku_id == levels.c.sku_id,
                ChannelListing.external_inventory_item_id.is_not(None),
            ),
        )
        # Rows in key order: two transactions marking overlapping sets lock them alike.
        .order_by(ChannelLocation.channel_id, levels.c.sku_id, ChannelLocation.id)
    )
    insert = postgresql.insert(mark) if dialect == "postgresql" else sqlite.insert(mark)
    # marked_at stays the time the level became due: a SKU changing every second must not
    # look fresh to the sweeper forever.
    return (
        insert.from_select(_MARK_COLUMNS, shown_at)
        .on_conflict_do_update(
            index_elements=["channel_id", "sku_id", "channel_location_id"],
            set_={"version": mark.c.version + 1},
        )
        .returning(mark.c.channel_id, mark.c.version, mark.c.claimed_by)
    )


@cache
def _mark_statement(dialect: str) -> Insert:
    """Built once per dialect: this runs with every stock change."""
    levels = Base.metadata.tables[StockLevel.__tablename__]
    return _marks_of(
        levels,
        levels.c.organization_id == bindparam("org_id"),
        levels.c.id.in_(bindparam("level_ids", expanding=True)),
        dialect=dialect,
    )


def change_and_mark(change: Update) -> Select[Any]:
    """PostgreSQL: a stock ``UPDATE … RETURNING on_hand, reserved, organization_id, sku_id,
    warehouse_id`` and the marking of what it changed, as one statement (data-modifying CTEs),
    so the hot path pays no extra round trip. Its rows: (on_hand, reserved, channel_id,
    version, claimed_by), one per mark (the mark columns NULL when there is none); no row when
    the UPDATE's guard refused the change."""
    changed = change.cte("changed")
    marked = _marks_of(changed, dialect="postgresql").cte("marked")
    return select(
        changed.c.on_hand,
        changed.c.reserved,
        marked.c.channel_id,
        marked.c.version,
        marked.c.claimed_by,
    ).select_from(changed.outerjoin(marked, true()))


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
    request_for_marks(session, organization_id, [tuple(row) for row in rows])


def request_for_marks(
    session: AsyncSession,
    organization_id: uuid.UUID,
    marks: Iterable[tuple[Any, ...]],
) -> None:
    """Ask for the push jobs the marks just written need: ``marks`` are (channel_id, version,
    claimed_by). A new mark (version 1) has no job yet; a claimed one has a push working on
    it, which goes round again, but a job that just finished its last round would leave it
    behind. A mark already waiting has its job."""
    channels = {
        channel_id
        for channel_id, version, claimed_by in marks
        if channel_id is not None and (version == 1 or claimed_by)
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
