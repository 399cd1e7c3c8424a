"""Recording fulfilments and consuming the stock they ship.

A fulfilment with a channel id is unique per order: the channel's own webhook for a fulfilment
that is already recorded matches the row and consumes nothing a second time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.errors import InvalidInput
from rappit.kit.ids import uuid7
from rappit.kit.sql import insert_ignore
from rappit.kit.types import utcnow
from rappit.models import Channel, Fulfillment, FulfillmentItem, FulfillmentStatus, Order
from rappit.orders.service import OrderService


@dataclass(frozen=True)
class FulfillmentLine:
    order_item_id: uuid.UUID
    quantity: int


@dataclass(frozen=True)
class Tracking:
    number: str | None = None
    company: str | None = None
    url: str | None = None


@dataclass
class RecordResult:
    fulfillment: Fulfillment
    created: bool
    # Units shipped that no reservation or free stock covered (the channel shipped them anyway).
    uncovered: dict[uuid.UUID, int]


class FulfillmentService:
    def __init__(self, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id
        self.orders = OrderService(session, organization_id)

    async def record(
        self,
        order: Order,
        lines: Sequence[FulfillmentLine],
        *,
        external_fulfillment_id: str | None = None,
        tracking: Tracking | None = None,
        status: FulfillmentStatus = FulfillmentStatus.SUCCESS,
    ) -> RecordResult:
        """Record a fulfilment of ``order`` (whose row lock the caller holds) and consume the
        reserved stock of its lines."""
        if order.organization_id != self.organization_id:
            raise ValueError("order belongs to another organisation")
        # The channel's id decides first: a repeat of a recorded fulfilment is matched, not
        # validated against what is left open (it is what made those units fulfilled).
        fulfillment, created = await self._insert(order, external_fulfillment_id, tracking, status)
        if not created:
            return RecordResult(fulfillment, created=False, uncovered={})
        items = {item.id: item for item in await self.orders.repository.items(order.id)}
        wanted: dict[uuid.UUID, int] = {}
        for line in lines:
            item = items.get(line.order_item_id)
            if item is None:
                raise InvalidInput(f"order item {line.order_item_id} is not part of this order")
            if line.quantity <= 0:
                raise InvalidInput("fulfilment quantities must be positive")
            wanted[item.id] = wanted.get(item.id, 0) + line.quantity
        for item_id, quantity in wanted.items():
            open_quantity = items[item_id].quantity - items[item_id].fulfilled_quantity
            if quantity > open_quantity:
                raise InvalidInput(
                    f"order item {item_id} has {open_quantity} unit(s) left to fulfil, "
                    f"not {quantity}"
                )

        uncovered: dict[uuid.UUID, int] = {}
        sku_ids = sorted({sku_id for i in wanted if (sku_id := items[i].sku_id) is not None})
        levels = await self.orders.inventory.lock_levels(sku_ids)
        for item_id, quantity in sorted(wanted.items()):
            item = items[item_id]
            self.session.add(
                FulfillmentItem(
                    organization_id=self.organization_id,
                    fulfillment_id=fulfillment.id,
                    order_item_id=item_id,
                    quantity=quantity,
                )
            )
            remaining = await self._consume(order, item_id, quantity)
            if remaining and item.sku_id is not None:
                # Shipped beyond what was held: take it from free stock if there is any.
                extra = await self.orders.inventory.reserve(
                    order_id=order.id,
                    order_item_id=item_id,
                    sku_id=item.sku_id,
                    quantity=remaining,
                    preferred_warehouse_id=None,
                    locked_levels=levels,
                )
                for reservation in extra:
                    await self.orders.inventory.consume(reservation, order_id=order.id)
                    remaining -= reservation.quantity
            if remaining:
                uncovered[item_id] = remaining
            item.fulfilled_quantity += quantity
        await self.session.flush()
        channel = await self.session.get(Channel, order.channel_id)
        await self.orders.reconcile(order, channel=channel)
        return RecordResult(fulfillment, created=True, uncovered=uncovered)

    async def _insert(
        self,
        order: Order,
        external_fulfillment_id: str | None,
        tracking: Tracking | None,
        status: FulfillmentStatus,
    ) -> tuple[Fulfillment, bool]:
        tracking = tracking or Tracking()
        now = utcnow()
        values = {
            "id": uuid7(),
            "organization_id": self.organization_id,
            "order_id": order.id,
            "external_fulfillment_id": external_fulfillment_id,
            "status": status,
            "tracking_number": tracking.number,
            "tracking_company": tracking.company,
            "tracking_url": tracking.url,
            "created_at": now,
            "updated_at": now,
        }
        inserted = await self.session.scalar(
            insert_ignore(self.session, Fulfillment, values).returning(Fulfillment.id)
        )
        if inserted is not None:
            fulfillment = await self.session.get_one(Fulfillment, inserted)
            return fulfillment, True
        existing = await self.session.scalar(
            select(Fulfillment).where(
                Fulfillment.organization_id == self.organization_id,
                Fulfillment.order_id == order.id,
                Fulfillment.external_fulfillment_id == external_fulfillment_id,
            )
        )
        assert existing is not None
        return existing, False

    async def _consume(self, order: Order, order_item_id: uuid.UUID, quantity: int) -> int:
        """Consume up to ``quantity`` reserved units of one line, oldest reservation first;
        returns how many units were not covered by a reservation."""
        held = await self.orders.repository.reservations([order_item_id], active_only=True)
        remaining = quantity
        for reservation in held:
            if remaining == 0:
                break
            take = min(remaining, reservation.quantity)
            await self.orders.inventory.consume(reservation, take, order_id=order.id)
            remaining -= take
        return remaining


def apply_update(
    fulfillment: Fulfillment, *, tracking: Tracking | None, status: FulfillmentStatus | None
) -> None:
    """A later change to a recorded fulfilment (new tracking, a status change). Stock was
    consumed when it was recorded; a cancellation is kept as a status, and the units are not
    put back on hand automatically (whether they came back is for a person to count)."""
    if tracking is not None:
        fulfillment.tracking_number = tracking.number
        fulfillment.tracking_company = tracking.company
        fulfillment.tracking_url = tracking.url
    if status is not None:
        fulfillment.status = status
