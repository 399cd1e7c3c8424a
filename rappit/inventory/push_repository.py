"""The inventory push's SQL: claiming, reading, settling and dropping a channel's marks, and
what Rappit knows of each channel level (last pushed, last known)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.db import dialect_of
from rappit.kit.ids import uuid7
from rappit.kit.types import utcnow
from rappit.models import (
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

_PUSHED = PushedInventoryLevel.__table__
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


class PushRepository:
    """One channel's marks, as seen by one push job (``claimant``, its job id)."""

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

    def _unlocked(self, *conditions: Any) -> Any:
        """The channel's marks matching ``conditions`` that no other transaction holds right
        now. Every write of a push goes through this: a stock transaction can hold a mark
        (bumping its version) while it waits for stock rows or other marks, so a push that
        waited for it in turn could close a deadlock. What it skips is dealt with later."""
        mark = InventoryPushMark
        keys = (
            select(mark.sku_id, mark.channel_location_id)
            .where(self._of_channel(), *conditions)
            .with_for_update(skip_locked=True)
        )
        return and_(self._of_channel(), tuple_(mark.sku_id, mark.channel_location_id).in_(keys))

    async def claim(self, *, limit: int, claim_timeout_s: int) -> dict[MarkKey, int]:
        """Take up to ``limit`` of the channel's marks: unclaimed ones, this job's own (a retry
        of it) and ones whose claim expired (their job died). Returns each mark's version.

        PostgreSQL skips rows a stock transaction is marking right now; that transaction sends
        a job of its own after it commits."""
        mark = InventoryPushMark
        now = utcnow()
        due = (
            select(mark.sku_id, mark.channel_location_id)
            .where(
                self._of_channel(),
                or_(
                    mark.claimed_by.is_(None),
                    mark.claimed_by == self.claimant,
                    mark.claimed_at < now - timedelta(seconds=claim_timeout_s),
                ),
            )
            .order_by(mark.sku_id, mark.channel_location_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = await self.session.execute(
            update(mark)
            .where(self._of_channel(), tuple_(mark.sku_id, mark.channel_location_id).in_(due))
            .values(claimed_by=self.claimant, claimed_at=now)
            .returning(mark.sku_id, mark.channel_location_id, mark.version)
            .execution_options(synchronize_session=False)
        )
        return {(sku_id, location_id): version for sku_id, location_id, version in rows}

    async def plan(self) -> list[PlannedLevel]:
        """The channel levels of this job's claimed marks, with Rappit's available (read now,
        after the claim: a change after this read bumps the mark's version, so it is pushed
        again) and the channel's last known figure."""
        mark, location, listing = InventoryPushMark, ChannelLocation, ChannelListing
        level, pushed = StockLevel, PushedInventoryLevel
        rows = await self.session.execute(
            select(
                mark.sku_id,
                mark.channel_location_id,
                listing.external_inventory_item_id,
                location.external_location_id,
                location.stock_master,
                level.on_hand,
                level.reserved,
                pushed.channel_quantity,
            )
            .select_from(mark)
            .join(location, location.id == mark.channel_location_id)
            .outerjoin(
                listing,
                and_(
                    listing.organization_id == mark.organization_id,
                    listing.channel_id == mark.channel_id,
                    listing.sku_id == mark.sku_id,
                    listing.external_inventory_item_id.is_not(None),
                ),
            )
            .outerjoin(
                level,
                and_(
                    level.organization_id == mark.organization_id,
                    level.sku_id == mark.sku_id,
                    level.warehouse_id == location.warehouse_id,
                ),
            )
            .outerjoin(
                pushed,
                and_(
                    pushed.channel_id == mark.channel_id,
                    pushed.external_inventory_item_id == listing.external_inventory_item_id,
                    pushed.external_location_id == location.external_location_id,
                ),
            )
            .where(self._of_channel(), mark.claimed_by == self.claimant)
            .order_by(listing.external_inventory_item_id, location.external_location_id)
        )
        return [
            PlannedLevel(
                mark=(sku_id, location_id),
                inventory_item_id=item_id,
                location_id=external_location_id,
                stock_master=stock_master,
                available=(on_hand or 0) - (reserved or 0),
                known=known,
            )
            for (
                sku_id,
                location_id,
                item_id,
                external_location_id,
                stock_master,
                on_hand,
                reserved,
                known,
            ) in rows
        ]

    async def touch_claims(self) -> None:
        """A long push renews its claims as it goes, so they never look abandoned."""
        await self.session.execute(
            update(InventoryPushMark)
            .where(self._unlocked(InventoryPushMark.claimed_by == self.claimant))
            .values(claimed_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    async def settle(self, claimed: dict[MarkKey, int]) -> int:
        """Remove the claimed marks still at the version claimed (their level was pushed or
        needed nothing), then release this job's other claims: those changed while it pushed
        and are due again. Marks a stock transaction holds right now are changing anyway: they
        stay claimed (``leftovers``). Returns how many marks were removed."""
        mark = InventoryPushMark
        removed = 0
        keys = sorted((sku, location, version) for (sku, location), version in claimed.items())
        for chunk in _chunks(keys):
            result = await self.session.execute(
                delete(mark)
                .where(
                    self._unlocked(
                        mark.claimed_by == self.claimant,
                        tuple_(mark.sku_id, mark.channel_location_id, mark.version).in_(
                            list(chunk)
                        ),
                    )
                )
                .execution_options(synchronize_session=False)
            )
            removed += int(result.rowcount)  # type: ignore[attr-defined]
        await self.session.execute(
            update(mark)
            .where(self._unlocked(mark.claimed_by == self.claimant))
            .values(claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        return removed

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
        """Remove every mark of the channel (it is disconnected, or nothing can push to it)."""
        result = await self.session.execute(
            delete(InventoryPushMark)
            .where(self._unlocked())
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

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

    insert = _insert(session)
    fields = {
        True: ("last_pushed", "pushed_at", "channel_quantity", "channel_quantity_at"),
        False: ("channel_quantity", "channel_quantity_at"),
    }
    for was_pushed, levels in (
        (True, pushed),
        (False, {key: value for key, value in seen.items() if key not in pushed}),
    ):
        rows = [values(key, quantity, was_pushed) for key, quantity in sorted(levels.items())]
        for chunk in _chunks(rows, 250):
            statement = insert(_PUSHED).values(list(chunk))
            set_ = {name: statement.excluded[name] for name in fields[was_pushed]}
            set_["updated_at"] = statement.excluded.updated_at
            await session.execute(
                statement.on_conflict_do_update(index_elements=_LEVEL_KEY, set_=set_)
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
