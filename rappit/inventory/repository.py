"""All inventory SQL. Every change of ``on_hand``/``reserved`` is one guarded UPDATE, so two
writers can never both pass a check that only one of them should pass."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import Integer, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from rappit.inventory.push_marks import change_and_mark, mark_levels, request_for_marks
from rappit.kit.db import dialect_of
from rappit.kit.ids import uuid7
from rappit.kit.sql import insert_ignore
from rappit.kit.types import utcnow
from rappit.models import InventoryMovement, Sku, StockLevel, Warehouse

# Built once: the stock UPDATE runs for every reservation, release and consumption, and
# building the expression each time costs more than executing it.
_NEW_ON_HAND = StockLevel.on_hand + bindparam("on_hand_delta", type_=Integer)
_NEW_RESERVED = StockLevel.reserved + bindparam("reserved_delta", type_=Integer)
_GUARDED_CHANGE = (
    update(StockLevel)
    .where(
        StockLevel.id == bindparam("level_id"),
        StockLevel.organization_id == bindparam("org_id"),
        _NEW_RESERVED >= 0,
        _NEW_ON_HAND >= _NEW_RESERVED,
    )
    .values(on_hand=_NEW_ON_HAND, reserved=_NEW_RESERVED, updated_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_CHANGE_LEVEL = _GUARDED_CHANGE.returning(StockLevel.on_hand, StockLevel.reserved)
# PostgreSQL: the same UPDATE and the marking of the channel levels it moves, in one round
# trip (push_marks.change_and_mark).
_CHANGE_AND_MARK = change_and_mark(
    _GUARDED_CHANGE.returning(
        StockLevel.on_hand,
        StockLevel.reserved,
        StockLevel.organization_id,
        StockLevel.sku_id,
        StockLevel.warehouse_id,
    )
)


class InventoryRepository:
    def __init__(self, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id

    async def ensure_levels(self, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Create missing (sku, warehouse) rows at zero; existing rows are left alone."""
        now = utcnow()
        values = [
            {
                "id": uuid7(),
                "organization_id": self.organization_id,
                "sku_id": sku_id,
                "warehouse_id": warehouse_id,
                "on_hand": 0,
                "reserved": 0,
                "created_at": now,
                "updated_at": now,
            }
            for sku_id, warehouse_id in sorted(set(pairs))
        ]
        if values:
            await self.session.execute(insert_ignore(self.session, StockLevel, values))

    async def lock_levels(self, sku_ids: Iterable[uuid.UUID]) -> list[StockLevel]:
        """Lock every stock row of these SKUs in id order (a fixed order, so two transactions
        locking overlapping sets cannot deadlock) and return fresh values."""
        ids = sorted(set(sku_ids))
        if not ids:
            return []
        # The warehouses come along (unlocked) so allocation needs no second round trip.
        statement = (
            select(StockLevel)
            .join(StockLevel.warehouse)
            .options(contains_eager(StockLevel.warehouse))
            .where(StockLevel.organization_id == self.organization_id, StockLevel.sku_id.in_(ids))
            .order_by(StockLevel.id)
            .with_for_update(of=StockLevel)
            .execution_options(populate_existing=True)
        )
        return list((await self.session.scalars(statement)).unique().all())

    async def get_level(self, sku_id: uuid.UUID, warehouse_id: uuid.UUID) -> StockLevel | None:
        return await self.session.scalar(
            select(StockLevel)
            .where(
                StockLevel.organization_id == self.organization_id,
                StockLevel.sku_id == sku_id,
                StockLevel.warehouse_id == warehouse_id,
            )
            .execution_options(populate_existing=True)
        )

    async def change_level(
        self, level_id: uuid.UUID, *, on_hand_delta: int, reserved_delta: int
    ) -> tuple[int, int] | None:
        """Apply both deltas in one statement, only if the result keeps
        ``0 <= reserved <= on_hand``. Returns the new (on_hand, reserved), or None when the
        guard refused the change."""
        parameters = {
            "level_id": level_id,
            "org_id": self.organization_id,
            "on_hand_delta": on_hand_delta,
            "reserved_delta": reserved_delta,
            "now": utcnow(),
        }
        # Available moves unless both change alike (a consumption): then the channels that
        # show this level must hear of it, in this same transaction.
        moves_available = on_hand_delta != reserved_delta
        if moves_available and dialect_of(self.session) == "postgresql":
            rows = (await self.session.execute(_CHANGE_AND_MARK, parameters)).all()
            if not rows:
                return None
            request_for_marks(self.session, self.organization_id, [row[2:] for row in rows])
            return rows[0][0], rows[0][1]
        row = (await self.session.execute(_CHANGE_LEVEL, parameters)).one_or_none()
        if row is None:
            return None
        if moves_available:
            await mark_levels(self.session, self.organization_id, [level_id])
        return row[0], row[1]

    def add_movement(
        self,
        *,
        sku_id: uuid.UUID,
        warehouse_id: uuid.UUID,
        on_hand_delta: int,
        reserved_delta: int,
        reason: str,
        note: str | None = None,
        reference: str | None = None,
        order_id: uuid.UUID | None = None,
    ) -> InventoryMovement:
        movement = InventoryMovement(
            organization_id=self.organization_id,
            sku_id=sku_id,
            warehouse_id=warehouse_id,
            on_hand_delta=on_hand_delta,
            reserved_delta=reserved_delta,
            reason=reason,
            note=note,
            reference=reference,
            order_id=order_id,
        )
        self.session.add(movement)
        return movement

    async def warehouses(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Warehouse]:
        ids = set(ids)
        if not ids:
            return {}
        rows = await self.session.scalars(
            select(Warehouse).where(
                Warehouse.organization_id == self.organization_id, Warehouse.id.in_(ids)
            )
        )
        return {row.id: row for row in rows}

    async def levels_view(
        self, *, sku_id: uuid.UUID | None = None, warehouse_id: uuid.UUID | None = None
    ) -> Sequence[tuple[StockLevel, Sku, Warehouse]]:
        statement = (
            select(StockLevel, Sku, Warehouse)
            .join(Sku, Sku.id == StockLevel.sku_id)
            .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
            .where(StockLevel.organization_id == self.organization_id)
            .order_by(Sku.code, Warehouse.priority, Warehouse.code)
        )
        if sku_id is not None:
            statement = statement.where(StockLevel.sku_id == sku_id)
        if warehouse_id is not None:
            statement = statement.where(StockLevel.warehouse_id == warehouse_id)
        rows = await self.session.execute(statement)
        return [(row[0], row[1], row[2]) for row in rows]

    async def ledger_totals(self) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, int]]:
        """Replay of the ledger: summed deltas per (sku, warehouse)."""
        rows = await self.session.execute(
            select(
                InventoryMovement.sku_id,
                InventoryMovement.warehouse_id,
                func.sum(InventoryMovement.on_hand_delta),
                func.sum(InventoryMovement.reserved_delta),
            )
            .where(InventoryMovement.organization_id == self.organization_id)
            .group_by(InventoryMovement.sku_id, InventoryMovement.warehouse_id)
        )
        return {(row[0], row[1]): (int(row[2]), int(row[3])) for row in rows}
