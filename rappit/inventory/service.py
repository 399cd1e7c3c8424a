"""Stock use cases: adjust, reserve (with warehouse allocation), release, consume.

Each change is a guarded single-statement UPDATE (see the repository) plus a ledger row in the
same transaction. Callers that touch several SKUs lock them first with ``lock_levels`` so the
locks are always taken in the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from rappit.inventory.repository import InventoryRepository
from rappit.kit.errors import Conflict, InvalidInput, RappitError
from rappit.kit.types import utcnow
from rappit.models import MovementReason, Reservation, StockLevel, Warehouse


class StockBelowReserved(Conflict):
    code = "stock_below_reserved"


class InventoryInvariantError(RappitError):
    """A release or consumption found fewer reserved units than the reservation says: the data
    is inconsistent and the transaction must not go on."""

    status_code = 500
    code = "inventory_invariant"


def _refresh(level: StockLevel, values: tuple[int, int]) -> None:
    """Show the values the guarded UPDATE returned without marking the row dirty: a plain
    assignment would make the flush write absolute values back, one statement too many."""
    set_committed_value(level, "on_hand", values[0])
    set_committed_value(level, "reserved", values[1])


@dataclass(frozen=True)
class Allocation:
    warehouse_id: uuid.UUID
    quantity: int


def plan_allocation(
    quantity: int,
    candidates: Sequence[tuple[StockLevel, Warehouse]],
    preferred_warehouse_id: uuid.UUID | None,
) -> list[Allocation]:
    """Choose warehouses for ``quantity`` units.

    Order of preference: the warehouse mapped to the order's channel location, then warehouse
    priority (lower first), then most available. One warehouse that can ship the whole line wins
    over splitting; when none can, units are taken greedily in that order. Returns what can be
    had, which may be less than asked for.
    """

    def rank(item: tuple[StockLevel, Warehouse]) -> tuple[bool, int, int, str]:
        level, warehouse = item
        return (
            warehouse.id != preferred_warehouse_id,
            warehouse.priority,
            -level.available,
            warehouse.code,
        )

    ordered = [item for item in sorted(candidates, key=rank) if item[0].available > 0]
    for level, warehouse in ordered:
        if level.available >= quantity:
            return [Allocation(warehouse.id, quantity)]
    plan: list[Allocation] = []
    remaining = quantity
    for level, warehouse in ordered:
        if remaining == 0:
            break
        take = min(level.available, remaining)
        plan.append(Allocation(warehouse.id, take))
        remaining -= take
    return plan


class InventoryService:
    def __init__(self, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id
        self.repository = InventoryRepository(session, organization_id)

    async def lock_levels(self, sku_ids: Sequence[uuid.UUID]) -> list[StockLevel]:
        return await self.repository.lock_levels(sku_ids)

    async def adjust(
        self,
        *,
        sku_id: uuid.UUID,
        warehouse_id: uuid.UUID,
        delta: int | None = None,
        set_to: int | None = None,
        note: str | None = None,
        reference: str | None = None,
    ) -> StockLevel:
        """Change ``on_hand`` by ``delta`` or to ``set_to``. Refused (409) when the result would
        fall below what is already reserved for orders, or below zero."""
        if (delta is None) == (set_to is None):
            raise InvalidInput("give exactly one of 'delta' or 'set'")
        if set_to is not None and set_to < 0:
            raise InvalidInput("'set' must not be negative")
        await self.repository.ensure_levels([(sku_id, warehouse_id)])
        await self.repository.lock_levels([sku_id])
        level = await self.repository.get_level(sku_id, warehouse_id)
        assert level is not None  # ensured just above, in this transaction
        if set_to is not None:
            # The row is locked, so the value read is the value the UPDATE will see.
            delta = set_to - level.on_hand
        assert delta is not None
        if delta == 0:
            return level
        changed = await self.repository.change_level(
            level.id, on_hand_delta=delta, reserved_delta=0
        )
        if changed is None:
            raise StockBelowReserved(
                f"on hand would become {level.on_hand + delta}, below the {level.reserved} "
                "units reserved for orders (or below zero)",
                extra={"on_hand": level.on_hand, "reserved": level.reserved},
            )
        self.repository.add_movement(
            sku_id=sku_id,
            warehouse_id=warehouse_id,
            on_hand_delta=delta,
            reserved_delta=0,
            reason=MovementReason.ADJUSTMENT,
            note=note,
            reference=reference,
        )
        _refresh(level, changed)
        return level

    async def reserve(
        self,
        *,
        order_id: uuid.UUID,
        order_item_id: uuid.UUID,
        sku_id: uuid.UUID,
        quantity: int,
        preferred_warehouse_id: uuid.UUID | None,
        locked_levels: Sequence[StockLevel],
    ) -> list[Reservation]:
        """Reserve up to ``quantity`` units of one SKU for one order line.

        ``locked_levels`` are the SKU's stock rows, locked by the caller. Returns the
        reservations made; their sum is less than ``quantity`` when stock is short.
        """
        if quantity <= 0:
            return []
        levels = [level for level in locked_levels if level.sku_id == sku_id]
        # lock_levels loaded each level's warehouse with it.
        candidates = [(level, level.warehouse) for level in levels]
        by_warehouse = {level.warehouse_id: level for level in levels}
        reservations: list[Reservation] = []
        for allocation in plan_allocation(quantity, candidates, preferred_warehouse_id):
            level = by_warehouse[allocation.warehouse_id]
            changed = await self.repository.change_level(
                level.id, on_hand_delta=0, reserved_delta=allocation.quantity
            )
            if changed is None:
                # Cannot happen while the caller holds the row lock; on SQLite the writer lock
                # plays that part. Skipping keeps "never oversell" even if a caller forgot.
                continue
            _refresh(level, changed)
            self.repository.add_movement(
                sku_id=sku_id,
                warehouse_id=allocation.warehouse_id,
                on_hand_delta=0,
                reserved_delta=allocation.quantity,
                reason=MovementReason.RESERVATION,
                order_id=order_id,
            )
            reservation = Reservation(
                organization_id=self.organization_id,
                order_item_id=order_item_id,
                sku_id=sku_id,
                warehouse_id=allocation.warehouse_id,
                quantity=allocation.quantity,
            )
            self.session.add(reservation)
            reservations.append(reservation)
        return reservations

    async def release(
        self, reservation: Reservation, quantity: int | None = None, *, order_id: uuid.UUID
    ) -> Reservation | None:
        """Give back ``quantity`` units (all by default). A partial release closes the row and
        returns a new active one holding the rest."""
        return await self._close(reservation, quantity, order_id=order_id, consume=False)

    async def consume(
        self, reservation: Reservation, quantity: int | None = None, *, order_id: uuid.UUID
    ) -> Reservation | None:
        """Ship ``quantity`` reserved units: ``on_hand`` and ``reserved`` both go down."""
        return await self._close(reservation, quantity, order_id=order_id, consume=True)

    async def _close(
        self, reservation: Reservation, quantity: int | None, *, order_id: uuid.UUID, consume: bool
    ) -> Reservation | None:
        if not reservation.is_active:
            raise InventoryInvariantError(f"reservation {reservation.id} is no longer active")
        quantity = reservation.quantity if quantity is None else quantity
        if not 0 < quantity <= reservation.quantity:
            raise InvalidInput(
                f"quantity must be between 1 and {reservation.quantity}, got {quantity}"
            )
        level = await self.repository.get_level(reservation.sku_id, reservation.warehouse_id)
        if level is None:
            raise InventoryInvariantError(f"no stock row behind reservation {reservation.id}")
        on_hand_delta = -quantity if consume else 0
        changed = await self.repository.change_level(
            level.id, on_hand_delta=on_hand_delta, reserved_delta=-quantity
        )
        if changed is None:
            raise InventoryInvariantError(
                f"stock row {level.id} holds fewer reserved units than reservation {reservation.id}"
            )
        self.repository.add_movement(
            sku_id=reservation.sku_id,
            warehouse_id=reservation.warehouse_id,
            on_hand_delta=on_hand_delta,
            reserved_delta=-quantity,
            reason=MovementReason.CONSUMPTION if consume else MovementReason.RELEASE,
            order_id=order_id,
        )
        now = utcnow()
        remainder = reservation.quantity - quantity
        if consume:
            reservation.consumed_at = now
        else:
            reservation.released_at = now
        reservation.quantity = quantity
        if remainder == 0:
            return None
        rest = Reservation(
            organization_id=self.organization_id,
            order_item_id=reservation.order_item_id,
            sku_id=reservation.sku_id,
            warehouse_id=reservation.warehouse_id,
            quantity=remainder,
        )
        self.session.add(rest)
        return rest
