"""Orders from channels: idempotent upsert, SKU resolution and reservation reconciliation.

``create_or_update_from_channel`` is the one entry point for every source (webhook, poll,
import): applying the same channel order twice, or concurrently, leaves one order and one set of
reservations, and a version older than the stored one changes nothing.

Lock order, everywhere: order rows (by id), then stock rows (by id). Keeping one order makes
concurrent transactions queue instead of deadlocking.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from rappit.inventory.service import InventoryService
from rappit.models import Channel, Order, OrderItem, OrderStatus, PaymentStatus, Reservation
from rappit.orders.inputs import ChannelOrder, ChannelOrderLine
from rappit.orders.repository import OrderRepository

# Payment states in which the goods are owed to the customer, so stock is held for them.
RESERVING_PAYMENT_STATES = frozenset(
    {PaymentStatus.PAID, PaymentStatus.PARTIALLY_PAID, PaymentStatus.PARTIALLY_REFUNDED}
)


def shipped_units(item: OrderItem) -> int:
    """Units of the line that left the warehouse: what Rappit recorded as fulfilled, or what
    the channel reports as fulfilled, whichever is more (both count the same units once Rappit
    has recorded the channel's fulfilment), within the line's quantity."""
    return min(max(item.fulfilled_quantity, item.channel_fulfilled_quantity), item.quantity)


def open_units(item: OrderItem) -> int:
    """Units of the line still to be shipped: what a paid order holds stock for."""
    return item.quantity - shipped_units(item)


def kept_units(item: OrderItem) -> int:
    """Units of the line a paid order keeps held once they are: its open units and also the
    units the channel reports shipped that Rappit has not recorded a fulfilment for yet. The
    channel's fulfilment (its webhook) consumes those; released before it arrives, they could be
    taken by another order meanwhile and the shipment would find nothing left to take, leaving
    on hand too high. No new stock is held for them (``open_units`` decides that)."""
    return item.quantity - min(item.fulfilled_quantity, item.quantity)


def order_status(
    *,
    cancelled: bool,
    lines: Sequence[tuple[int, int, bool]],
    holds_stock: bool,
    wanted: int,
    missing: int,
) -> OrderStatus:
    """An order's status from its lines' (quantity, units shipped, mapped to a SKU), whether it
    holds stock, and the units it wants held and could not get. One rule for every path that
    settles orders (``OrderService.reconcile`` and the import's batch path)."""
    if cancelled:
        return OrderStatus.CANCELLED
    ordered = sum(quantity for quantity, _, _ in lines)
    shipped = sum(units for _, units, _ in lines)
    if ordered > 0 and shipped >= ordered:
        return OrderStatus.FULFILLED
    # A line without a SKU needs a person only while some of it is still to be shipped.
    if any(not mapped and quantity > units for quantity, units, mapped in lines):
        return OrderStatus.NEEDS_ATTENTION
    if shipped > 0:
        return OrderStatus.PARTIALLY_FULFILLED
    if not holds_stock:
        return OrderStatus.PENDING
    if missing == 0:
        return OrderStatus.RESERVED
    if missing >= wanted:
        return OrderStatus.BACKORDERED
    return OrderStatus.PARTIALLY_RESERVED


class UpsertOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    STALE = "stale"


@dataclass(frozen=True)
class Shortfall:
    """One order line that could not get all the stock it needs."""

    order_item_id: uuid.UUID
    external_item_id: str
    sku_id: uuid.UUID
    requested: int
    reserved: int


@dataclass
class ReconcileResult:
    status: OrderStatus
    shortfalls: list[Shortfall] = field(default_factory=list)


@dataclass
class UpsertResult:
    order: Order
    outcome: UpsertOutcome
    shortfalls: list[Shortfall] = field(default_factory=list)


class OrderService:
    def __init__(self, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id
        self.repository = OrderRepository(session, organization_id)
        self.inventory = InventoryService(session, organization_id)

    async def create_or_update_from_channel(
        self, channel: Channel, data: ChannelOrder
    ) -> UpsertResult:
        if channel.organization_id != self.organization_id:
            raise ValueError("channel belongs to another organisation")
        await self.repository.insert_if_absent(channel.id, data.external_order_id)
        # Serialises every writer of this order (webhooks, polls, replays) until commit.
        order = await self.repository.lock_by_external_id(channel.id, data.external_order_id)
        is_new = order.channel_updated_at is None
        if not is_new and order.channel_updated_at and data.updated_at < order.channel_updated_at:
            return UpsertResult(order, UpsertOutcome.STALE)

        self._apply_header(order, data)
        items = await self._apply_lines(order, channel, data.lines, is_new=is_new)
        # A new order has no reservations yet: nothing to read back (two statements fewer on
        # the path every incoming order takes).
        result = await self.reconcile(order, channel=channel, items=items, holds_nothing=is_new)
        await self.session.flush()
        outcome = UpsertOutcome.CREATED if is_new else UpsertOutcome.UPDATED
        return UpsertResult(order, outcome, result.shortfalls)

    async def lock_batch(
        self, channel_id: uuid.UUID, external_order_ids: Sequence[str]
    ) -> list[Order]:
        """Before applying several channel orders in one transaction: create the missing ones
        (empty rows, as ``create_or_update_from_channel`` would) and lock them all, in id order,
        before any stock row. Locked one by one as they are applied, a webhook holding a later
        order of the batch and then taking the same stock would deadlock with the batch."""
        await self.repository.insert_all_if_absent(channel_id, external_order_ids)
        return await self.repository.lock_by_external_ids(channel_id, external_order_ids)

    def _apply_header(self, order: Order, data: ChannelOrder) -> None:
        order.channel_updated_at = data.updated_at
        order.name = data.name
        order.payment_status = data.payment_status
        order.fulfillment_status = data.fulfillment_status
        order.cancelled_at = data.cancelled_at
        order.currency = data.currency
        order.total_price = data.total_price
        order.customer = data.customer
        customer_id = (data.customer or {}).get("id")
        order.customer_external_id = str(customer_id) if customer_id is not None else None
        order.shipping_address = data.shipping_address
        order.billing_address = data.billing_address
        order.external_location_id = data.external_location_id
        order.is_test = data.is_test
        order.details = data.details

    async def _apply_lines(
        self, order: Order, channel: Channel, lines: Sequence[ChannelOrderLine], *, is_new: bool
    ) -> list[OrderItem]:
        """Write the channel's lines onto the order's items; returns every item of the order
        (by id), as now flushed. A new order has none yet: they are not read."""
        stored = [] if is_new else await self.repository.items(order.id)
        existing = {item.external_item_id: item for item in stored}
        added: list[OrderItem] = []
        seen: set[str] = set()
        for line in lines:
            if line.external_item_id in seen:
                # A channel never repeats a line id; if a payload does, the first one wins.
                continue
            seen.add(line.external_item_id)
            item = existing.get(line.external_item_id)
            if item is None:
                item = OrderItem(
                    organization_id=self.organization_id,
                    order_id=order.id,
                    external_item_id=line.external_item_id,
                    fulfilled_quantity=0,
                    channel_fulfilled_quantity=0,
                )
                self.session.add(item)
                added.append(item)
            identity_changed = (
                item.external_variant_id != line.external_variant_id or item.sku_code != line.sku
            )
            item.external_product_id = line.external_product_id
            item.external_variant_id = line.external_variant_id
            item.sku_code = line.sku
            item.title = line.title
            item.quantity = line.quantity
            item.channel_fulfilled_quantity = line.channel_fulfilled_quantity
            item.price = line.price
            item.requires_shipping = line.requires_shipping
            if item.sku_id is None or identity_changed:
                item.sku_id = await self.resolve_sku(channel.id, line)
        for external_item_id, item in existing.items():
            if external_item_id not in seen:
                # Removed from the order by an edit: nothing more is owed for it.
                item.quantity = 0
        await self.session.flush()
        return sorted([*stored, *added], key=lambda item: item.id)

    async def resolve_sku(self, channel_id: uuid.UUID, line: ChannelOrderLine) -> uuid.UUID | None:
        """The channel's variant id through a listing first (stable), else the SKU code in the
        organisation (recording the listing for next time), else unmapped."""
        if line.external_variant_id:
            sku_id = await self.repository.sku_for_variant(channel_id, line.external_variant_id)
            if sku_id is not None:
                return sku_id
        code = (line.sku or "").strip()
        if not code:
            return None
        sku_id = await self.repository.sku_for_code(code)
        if sku_id is not None and line.external_variant_id:
            await self.repository.record_listing(
                channel_id,
                sku_id,
                variant_id=line.external_variant_id,
                product_id=line.external_product_id,
            )
        return sku_id

    async def reconcile(
        self,
        order: Order,
        *,
        channel: Channel | None = None,
        items: Sequence[OrderItem] | None = None,
        holds_nothing: bool = False,
    ) -> ReconcileResult:
        """Make the order's active reservations match what it owes now, then set its status.

        The caller holds the order's row lock. Paid → each mapped line holds what is still to
        be shipped (``open_units``: quantity less what Rappit recorded or the channel reports as
        fulfilled), and keeps what it holds for units the channel shipped until their
        fulfilment is recorded (``kept_units``); cancelled, unpaid or refunded → nothing held.

        ``items``: the order's items as the caller just wrote them under the same lock (else
        they are read); ``holds_nothing``: the caller knows there are no reservations (a new
        order).
        """
        if items is None:
            items = await self.repository.items(order.id)
        active = (
            []
            if holds_nothing
            else await self.repository.reservations([i.id for i in items], active_only=True)
        )
        by_item: dict[uuid.UUID, list[Reservation]] = defaultdict(list)
        for reservation in active:
            by_item[reservation.order_item_id].append(reservation)

        holds_stock = self._holds_stock(order, channel)
        desired = {
            item.id: open_units(item) if holds_stock and item.sku_id is not None else 0
            for item in items
        }
        kept = {
            item.id: kept_units(item) if holds_stock and item.sku_id is not None else 0
            for item in items
        }
        sku_ids = {r.sku_id for r in active} | {i.sku_id for i in items if i.sku_id is not None}
        levels = await self.inventory.lock_levels(sorted(sku_ids))
        preferred = await self.repository.warehouse_for_location(
            order.channel_id, order.external_location_id
        )

        shortfalls: list[Shortfall] = []
        for item in items:
            held = by_item[item.id]
            # Reservations for a SKU the line no longer maps to are given back first.
            for reservation in [r for r in held if r.sku_id != item.sku_id]:
                await self.inventory.release(reservation, order_id=order.id)
                held.remove(reservation)
            have = sum(r.quantity for r in held)
            want = desired[item.id]
            if have > kept[item.id]:
                await self._release_surplus(order, held, have - kept[item.id])
            elif want > have and item.sku_id is not None:
                made = await self.inventory.reserve(
                    order_id=order.id,
                    order_item_id=item.id,
                    sku_id=item.sku_id,
                    quantity=want - have,
                    preferred_warehouse_id=preferred,
                    locked_levels=levels,
                )
                got = have + sum(r.quantity for r in made)
                if got < want:
                    shortfalls.append(
                        Shortfall(item.id, item.external_item_id, item.sku_id, want, got)
                    )
        status = order_status(
            cancelled=order.cancelled_at is not None,
            lines=[(item.quantity, shipped_units(item), item.sku_id is not None) for item in items],
            holds_stock=holds_stock,
            wanted=sum(desired.values()),
            missing=sum(s.requested - s.reserved for s in shortfalls),
        )
        order.status = status
        await self.session.flush()
        return ReconcileResult(status, shortfalls)

    async def _release_surplus(self, order: Order, held: list[Reservation], surplus: int) -> None:
        # Newest reservations go first, so the oldest (earliest promised) units stay.
        for reservation in sorted(held, key=lambda r: r.id, reverse=True):
            if surplus == 0:
                break
            take = min(surplus, reservation.quantity)
            await self.inventory.release(reservation, take, order_id=order.id)
            surplus -= take

    def _holds_stock(self, order: Order, channel: Channel | None) -> bool:
        if order.cancelled_at is not None:
            return False
        if order.payment_status in RESERVING_PAYMENT_STATES:
            return True
        reserve_on_authorized = bool(channel and channel.settings.get("reserve_on_authorized"))
        return reserve_on_authorized and order.payment_status == PaymentStatus.AUTHORIZED

    async def reconcile_orders(self, order_ids: Sequence[uuid.UUID]) -> int:
        """Lock and reconcile several orders (oldest first); returns how many were reconciled."""
        orders = await self.repository.lock_orders(order_ids)
        position = {order_id: index for index, order_id in enumerate(order_ids)}
        for order in sorted(orders, key=lambda o: position[o.id]):
            channel = await self.session.get(Channel, order.channel_id)
            if order.status == OrderStatus.NEEDS_ATTENTION and channel is not None:
                await self._resolve_lines(order, channel)
            await self.reconcile(order, channel=channel)
        return len(orders)

    async def _resolve_lines(self, order: Order, channel: Channel) -> None:
        for item in await self.repository.items(order.id):
            if item.sku_id is None and item.quantity > 0:
                item.sku_id = await self.resolve_sku(
                    channel.id,
                    ChannelOrderLine(
                        external_item_id=item.external_item_id,
                        quantity=item.quantity,
                        external_product_id=item.external_product_id,
                        external_variant_id=item.external_variant_id,
                        sku=item.sku_code,
                    ),
                )
        await self.session.flush()

    async def resolve_unmapped_lines(self) -> int:
        """Retry SKU resolution for orders that need attention (after SKUs or listings were
        created); returns how many orders were looked at."""
        return await self.reconcile_orders(await self.repository.orders_with_unmapped_lines())

    async def allocate_backorders(self, sku_ids: Sequence[uuid.UUID]) -> int:
        """Give newly arrived stock of these SKUs to the orders waiting for it, oldest first."""
        return await self.reconcile_orders(await self.repository.orders_short_of(sku_ids))
