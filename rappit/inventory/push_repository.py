"""The inventory push's SQL: claiming, reading, settling and dropping a channel's marks, and
what Rappit knows of each channel level (last pushed, last known)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.db import dialect_of
from rappit.kit.ids import uuid7
from rappit.kit.types import UtcDateTime, utcnow
from rappit.models import (
    Base,
    ChannelListing,
    ChannelLocation,
    InventoryPushMark,
    PushedInventoryLevel,
    StockLevel,
)

T = TypeVar("T")

# (SKU id, channel location id): one mark.
MarkKey = tuple[uuid.UUID, uuid.UUID]
# (inventory item id, location id) as the channel names them: one channel level.
LevelKey = tuple[str, str]

# Rows per statement where a statement takes many keys (SQLite's older builds allow 999
# parameters per statement).
_CHUNK = 300

_PUSHED = Base.metadata.tables[PushedInventoryLevel.__tablename__]
_LEVEL_KEY = ["channel_id", "external_inventory_item_id", "external_location_id"]


@dataclass(frozen=True)
class PlannedLevel:
    """One channel level a claimed mark stands for, next to Rappit's stock."""

    mark: MarkKey
    # None: the SKU is no longer listed on the channel with an inventory item.
    inventory_item_id: str | None
    location_id: str
    stock_master: str
    available: int
    # The channel's figure as last known (what was pushed, re-read or reported), if any.
    known: int | None


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_MARKS = Base.metadata.tables[InventoryPushMark.__tablename__]
# One mark by its primary key, for executemany: every statement an index lookup, whatever the
# table's statistics say. Marks come and go in bulk, so the planner's idea of the table's size
# is often wrong, and a plan built on it must not become a scan per row.
_BY_KEY = and_(
    _MARKS.c.organization_id == bindparam("k_org"),
    _MARKS.c.channel_id == bindparam("k_channel"),
    _MARKS.c.sku_id == bindparam("k_sku"),
    _MARKS.c.channel_location_id == bindparam("k_location"),
)
_SET_CLAIM = (
    update(_MARKS)
    .where(_BY_KEY)
    .values(claimed_by=bindparam("v_by"), claimed_at=bindparam("v_at", type_=UtcDateTime()))
)
_DELETE = delete(_MARKS).where(_BY_KEY)
# Rows per IN list where the plan reads related rows.
_READ_CHUNK = 1000


class PushRepository:
    """One channel's marks, as seen by one push job (``claimant``, its job id).

    A push never waits for a mark: a stock transaction can hold one (bumping its version)
    while it waits for stock rows or other marks, and a push waiting for it in turn could close
    a deadlock. So the push locks marks with ``FOR UPDATE SKIP LOCKED`` in one pass over the
    channel's marks, then changes exactly the rows it locked, one primary-key statement each
    (executemany). What it skipped is dealt with later (``leftovers``)."""

    def __init__(
        self,
        session: AsyncSession,
        organization_id: uuid.UUID,
        channel_id: uuid.UUID,
        claimant: str,
    ) -> None:
        self.session = session
        self.organization_id = organization_id
        self.channel_id = channel_id
        self.claimant = claimant

    def _of_channel(self) -> Any:
        return and_(
            InventoryPushMark.organization_id == self.organization_id,
            InventoryPushMark.channel_id == self.channel_id,
        )

    async def _lock(
        self, *conditions: Any, limit: int | None = None
    ) -> dict[MarkKey, tuple[int, str | None]]:
        """Lock the channel's marks matching ``conditions`` that no other transaction holds;
        answers each one's version and claimant."""
        mark = InventoryPushMark
        statement = (
            select(mark.sku_id, mark.channel_location_id, mark.version, mark.claimed_by)
            .where(self._of_channel(), *conditions)
            .with_for_update(skip_locked=True)
        )
        if limit is not None:
            statement = statement.order_by(mark.sku_id, mark.channel_location_id).limit(limit)
        rows = await self.session.execute(statement)
        return {(sku, location): (version, by) for sku, location, version, by in rows}

    async def _custom_plans(self) -> None:
        """PostgreSQL: plan each execution with its own parameters. A prepared statement run
        many times (executemany) otherwise gets a generic plan, kept for the connection's
        life, made while the marks table looked empty: a scan per row once it holds
        thousands."""
        if dialect_of(self.session) == "postgresql":
            await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))

    def _keys(self, keys: Iterable[MarkKey], **values: Any) -> list[dict[str, Any]]:
        return [
            {
                "k_org": self.organization_id,
                "k_channel": self.channel_id,
                "k_sku": sku,
                "k_location": location,
                **values,
            }
            for sku, location in keys
        ]

    async def _set_claim(self, keys: Sequence[MarkKey], by: str | None, at: Any) -> None:
        if keys:
            await self.session.execute(_SET_CLAIM, self._keys(keys, v_by=by, v_at=at))

    async def _delete(self, keys: Sequence[MarkKey]) -> None:
        if keys:
            await self.session.execute(_DELETE, self._keys(keys))

    async def claim(self, *, limit: int, claim_timeout_s: int) -> dict[MarkKey, int]:
        """Take up to ``limit`` of the channel's marks: unclaimed ones, this job's own (a retry
        of it) and ones whose claim expired (their job died). Returns each mark's version.

        Marks a stock transaction holds right now are skipped; it sends a job of its own after
        it commits."""
        await self._custom_plans()
        mark = InventoryPushMark
        now = utcnow()
        locked = await self._lock(
            or_(
                mark.claimed_by.is_(None),
                mark.claimed_by == self.claimant,
                mark.claimed_at < now - timedelta(seconds=claim_timeout_s),
            ),
            limit=limit,
        )
        await self._set_claim(sorted(locked), self.claimant, now)
        return {key: version for key, (version, _) in locked.items()}

    async def plan(self, claimed: Iterable[MarkKey]) -> list[PlannedLevel]:
        """The channel levels of these claimed marks, with Rappit's available (read now,
        after the claim: a change after this read bumps the mark's version, so it is pushed
        again) and the channel's last known figure.

        Read as a few lookups by key lists and joined here rather than as one many-way join:
        each lookup stays an index read however the planner sees the tables."""
        await self._custom_plans()
        keys = sorted(claimed)
        locations = {
            row.id: row
            for row in await self.session.scalars(
                select(ChannelLocation).where(
                    ChannelLocation.organization_id == self.organization_id,
                    ChannelLocation.channel_id == self.channel_id,
                )
            )
        }
        planned: list[PlannedLevel] = []
        for chunk in _chunks(keys, _READ_CHUNK):
            skus = sorted({sku for sku, _ in chunk})
            warehouses = sorted(
                {locations[loc].warehouse_id for _, loc in chunk if loc in locations}
            )
            items: dict[uuid.UUID, list[str]] = {}
            for sku, item in await self.session.execute(
                select(ChannelListing.sku_id, ChannelListing.external_inventory_item_id).where(
                    ChannelListing.organization_id == self.organization_id,
                    ChannelListing.channel_id == self.channel_id,
                    ChannelListing.sku_id.in_(skus),
                    ChannelListing.external_inventory_item_id.is_not(None),
                )
            ):
                items.setdefault(sku, []).append(str(item))
            stock = {
                (sku, warehouse): on_hand - reserved
                for sku, warehouse, on_hand, reserved in await self.session.execute(
                    select(
                        StockLevel.sku_id,
                        StockLevel.warehouse_id,
                        StockLevel.on_hand,
                        StockLevel.reserved,
                    ).where(
                        StockLevel.organization_id == self.organization_id,
                        StockLevel.sku_id.in_(skus),
                        StockLevel.warehouse_id.in_(warehouses),
                    )
                )
            }
            item_ids = sorted({item for found in items.values() for item in found})
            known: dict[LevelKey, int | None] = {}
            if item_ids:
                rows = await self.session.execute(
                    select(
                        PushedInventoryLevel.external_inventory_item_id,
                        PushedInventoryLevel.external_location_id,
                        PushedInventoryLevel.channel_quantity,
                    ).where(
                        PushedInventoryLevel.organization_id == self.organization_id,
                        PushedInventoryLevel.channel_id == self.channel_id,
                        PushedInventoryLevel.external_inventory_item_id.in_(item_ids),
                    )
                )
                known = {(item, location): quantity for item, location, quantity in rows}
            for sku, location_id in chunk:
                location = locations.get(location_id)
                if location is None:
                    continue  # unmapped since: the mark went with it
                available = stock.get((sku, location.warehouse_id), 0)
                # No listing with an inventory item any more: one row says so.
                listed: list[str | None] = [*items.get(sku, [])] or [None]
                for item in listed:
                    planned.append(
                        PlannedLevel(
                            mark=(sku, location_id),
                            inventory_item_id=item,
                            location_id=location.external_location_id,
                            stock_master=location.stock_master,
                            available=available,
                            known=None
                            if item is None
                            else known.get((item, location.external_location_id)),
                        )
                    )
        return planned

    async def touch_claims(self) -> None:
        """A long push renews its claims now and then, so they never look abandoned."""
        await self._custom_plans()
        held = await self._lock(InventoryPushMark.claimed_by == self.claimant)
        await self._set_claim(sorted(held), self.claimant, utcnow())

    async def settle(self, claimed: dict[MarkKey, int]) -> int:
        """Remove the claimed marks still at the version claimed (their level was pushed or
        needed nothing) and release the others: they changed while the job pushed and are due
        again. Marks a stock transaction holds right now are changing anyway: they stay claimed
        (``leftovers``). Returns how many marks were removed."""
        await self._custom_plans()
        held = await self._lock(InventoryPushMark.claimed_by == self.claimant)
        done = sorted(key for key, (version, _) in held.items() if claimed.get(key) == version)
        again = sorted(key for key, (version, _) in held.items() if claimed.get(key) != version)
        await self._delete(done)
        await self._set_claim(again, None, None)
        return len(done)

    async def leftovers(self) -> list[MarkKey]:
        """This job's claims that ``settle`` had to leave (a stock transaction held them)."""
        rows = await self.session.execute(
            select(InventoryPushMark.sku_id, InventoryPushMark.channel_location_id).where(
                self._of_channel(), InventoryPushMark.claimed_by == self.claimant
            )
        )
        return [(sku_id, location_id) for sku_id, location_id in rows]

    async def release(self, key: MarkKey) -> None:
        """Release one claim, waiting for a stock transaction that holds the mark: in a
        transaction of its own that holds nothing else, so the wait cannot be part of a
        deadlock."""
        mark = InventoryPushMark
        await self.session.execute(
            update(mark)
            .where(
                self._of_channel(),
                mark.sku_id == key[0],
                mark.channel_location_id == key[1],
                mark.claimed_by == self.claimant,
            )
            .values(claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )

    async def drop(self) -> int:
        """Remove the channel's marks (it is disconnected, or nothing can push to it)."""
        await self._custom_plans()
        held = await self._lock()
        await self._delete(sorted(held))
        return len(held)

    async def record(self, pushed: dict[LevelKey, int], seen: dict[LevelKey, int]) -> None:
        """What the channel shows now: ``pushed`` levels were set by this push (the value an
        echoing webhook will carry), ``seen`` ones were read from the channel."""
        await record_levels(
            self.session, self.organization_id, self.channel_id, pushed=pushed, seen=seen
        )


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert


async def record_levels(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    *,
    pushed: dict[LevelKey, int],
    seen: dict[LevelKey, int],
) -> None:
    now = utcnow()
    # Whole seconds, as the channel stamps its own changes: a change the channel reports for
    # the same second as this push is taken as the later one (note_channel_quantity).
    known_at = now.replace(microsecond=0)

    def values(key: LevelKey, quantity: int, was_pushed: bool) -> dict[str, Any]:
        return {
            "id": uuid7(),
            "organization_id": organization_id,
            "channel_id": channel_id,
            "external_inventory_item_id": key[0],
            "external_location_id": key[1],
            "last_pushed": quantity if was_pushed else None,
            "pushed_at": now if was_pushed else None,
            "channel_quantity": quantity,
            "channel_quantity_at": known_at,
            "created_at": now,
            "updated_at": now,
        }

    for was_pushed, levels in (
        (True, pushed),
        (False, {key: value for key, value in seen.items() if key not in pushed}),
    ):
        rows = [values(key, quantity, was_pushed) for key, quantity in sorted(levels.items())]
        if rows:
            # One statement, many parameter sets (executemany): compiled once, cached.
            await session.execute(_upsert_levels(dialect_of(session), was_pushed), rows)


@cache
def _upsert_levels(dialect: str, was_pushed: bool) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_PUSHED)
    fields = ["channel_quantity", "channel_quantity_at", "updated_at"]
    if was_pushed:
        fields += ["last_pushed", "pushed_at"]
    return statement.on_conflict_do_update(
        index_elements=_LEVEL_KEY, set_={name: statement.excluded[name] for name in fields}
    )


async def pushed_level(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    inventory_item_id: str,
    location_id: str,
) -> PushedInventoryLevel | None:
    return await session.scalar(
        select(PushedInventoryLevel).where(
            PushedInventoryLevel.organization_id == organization_id,
            PushedInventoryLevel.channel_id == channel_id,
            PushedInventoryLevel.external_inventory_item_id == inventory_item_id,
            PushedInventoryLevel.external_location_id == location_id,
        )
    )


async def note_channel_quantity(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    key: LevelKey,
    quantity: int,
    at: datetime,
) -> None:
    """Keep the channel's own figure of a level (from its webhook, stamped with the channel's
    time of the change), unless a later one is known already: deliveries come in any order.
    A figure of the same second as the known one wins (channels stamp whole seconds)."""
    insert = _insert(session)
    statement = insert(_PUSHED).values(
        id=uuid7(),
        organization_id=organization_id,
        channel_id=channel_id,
        external_inventory_item_id=key[0],
        external_location_id=key[1],
        channel_quantity=quantity,
        channel_quantity_at=at,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=_LEVEL_KEY,
            set_={
                "channel_quantity": statement.excluded.channel_quantity,
                "channel_quantity_at": statement.excluded.channel_quantity_at,
                "updated_at": statement.excluded.updated_at,
            },
            where=or_(
                _PUSHED.c.channel_quantity_at.is_(None),
                _PUSHED.c.channel_quantity_at <= statement.excluded.channel_quantity_at,
            ),
        )
    )
