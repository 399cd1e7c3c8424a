"""Recording fulfilments and consuming the stock they ship.

Two ways in. The channel reports one (its webhook): ``record`` with the channel's id, which is
unique per order, so a repeat matches the row and consumes nothing a second time. Or a person
fulfils in Rappit (``create_for_order``, the API): recorded and consumed at once, then written
to the channel by the ``fulfillments.writeback`` job (``writeback.py``); the channel's webhook
for it is matched by the id the job stored, or, when it comes first, by its lines
(``claim_in_flight``). Either way the stock is consumed exactly once, when the row is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.fulfillments.tasks import writeback_job
from rappit.kit.errors import Conflict, InvalidInput, NotFound
from rappit.kit.ids import uuid7
from rappit.kit.sql import insert_ignore
from rappit.kit.types import utcnow
from rappit.models import (
    Channel,
    ChannelStatus,
    Fulfillment,
    FulfillmentItem,
    FulfillmentStatus,
    FulfillmentSyncStatus,
    Order,
    OrderItem,
    OrderStatus,
)
from rappit.orders.service import OrderService, open_units
from rappit.queues.enqueue import enqueue


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
        idempotency_key: str | None = None,
        made_in_rappit: bool = False,
    ) -> RecordResult:
        """Record a fulfilment of ``order`` (whose row lock the caller holds) and consume the
        reserved stock of its lines.

        ``made_in_rappit``: it goes to the channel, which refuses units it already shipped
        itself, so those count as fulfilled too (``open_units``), even before the channel's own
        fulfilment of them is recorded. The channel's fulfilments are checked against what
        Rappit recorded only: they are what made the channel's units shipped."""
        if order.organization_id != self.organization_id:
            raise ValueError("order belongs to another organisation")
        # The channel's id (or the caller's idempotency key) decides first: a repeat of a
        # recorded fulfilment is matched, not validated against what is left open (it is what
        # made those units fulfilled).
        fulfillment, created = await self._insert(
            order, external_fulfillment_id, tracking, status, idempotency_key
        )
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
            item = items[item_id]
            open_quantity = (
                open_units(item) if made_in_rappit else item.quantity - item.fulfilled_quantity
            )
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

    async def create_for_order(
        self,
        order_id: uuid.UUID,
        lines: Sequence[FulfillmentLine],
        *,
        tracking: Tracking | None,
        notify_customer: bool,
        idempotency_key: str | None = None,
    ) -> tuple[Fulfillment, bool]:
        """A fulfilment made in Rappit (the API): recorded and its stock consumed now, written
        to the channel by a job after the commit. A repeat with the same idempotency key
        answers the fulfilment it made (False) instead of making another."""
        if idempotency_key is not None:
            # Before any check of the order's state: a repeat gets the same answer even after
            # its own fulfilment closed the order.
            made = await self._by_idempotency_key(idempotency_key)
            if made is not None:
                await self._same_request(made, order_id, lines)
                return made, False
        locked = await self.orders.repository.lock_orders([order_id])
        if not locked:
            raise NotFound("order not found")
        order = locked[0]
        if order.cancelled_at is not None or order.status == OrderStatus.CANCELLED:
            raise Conflict("the order is cancelled: nothing can be fulfilled")
        channel = await self.session.get(Channel, order.channel_id)
        if channel is None or channel.status != ChannelStatus.ACTIVE:
            raise Conflict("the order's channel is disconnected: the fulfilment cannot reach it")
        if not lines:
            raise InvalidInput("a fulfilment needs at least one item")
        result = await self.record(
            order,
            lines,
            tracking=tracking,
            status=FulfillmentStatus.PENDING,
            idempotency_key=idempotency_key,
            made_in_rappit=True,
        )
        fulfillment = result.fulfillment
        if not result.created:  # the same key, committed by a concurrent request meanwhile
            await self._same_request(fulfillment, order_id, lines)
            return fulfillment, False
        fulfillment.notify_customer = notify_customer
        fulfillment.sync_status = FulfillmentSyncStatus.PENDING
        fulfillment.sync_revision = 1
        await self.session.flush()
        enqueue(self.session, writeback_job(self.organization_id, fulfillment.id))
        return fulfillment, True

    async def update_tracking(
        self,
        fulfillment_id: uuid.UUID,
        tracking: Tracking,
        *,
        notify_customer: bool | None = None,
    ) -> Fulfillment:
        """New tracking for a fulfilment: saved, then written to the channel by the
        fulfilment's write-back job (which creates it there first if that has not happened, or
        failed before: this is also how a refused write is tried again)."""
        fulfillment = await self.session.scalar(
            select(Fulfillment)
            .where(
                Fulfillment.organization_id == self.organization_id,
                Fulfillment.id == fulfillment_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if fulfillment is None:
            raise NotFound("fulfilment not found")
        if fulfillment.status == FulfillmentStatus.CANCELLED:
            raise Conflict("the fulfilment is cancelled: its tracking cannot change")
        fulfillment.tracking_number = tracking.number
        fulfillment.tracking_company = tracking.company
        fulfillment.tracking_url = tracking.url
        if notify_customer is not None:
            fulfillment.notify_customer = notify_customer
        fulfillment.sync_revision += 1
        fulfillment.sync_status = FulfillmentSyncStatus.PENDING
        fulfillment.sync_error = None
        await self.session.flush()
        enqueue(self.session, writeback_job(self.organization_id, fulfillment.id, replace=True))
        return fulfillment

    async def claim_in_flight(
        self,
        order: Order,
        external_fulfillment_id: str,
        quantities: dict[str, int],
        tracking: Tracking,
        status: FulfillmentStatus,
        channel_updated_at: datetime | None = None,
    ) -> Fulfillment | None:
        """The channel reports a fulfilment Rappit does not know by id: if it is one Rappit
        has sent to the channel but not yet stored the id of (the webhook came first, or the
        job died after the call), it is that fulfilment. Matched by the order (whose lock the
        caller holds) and the exact units per order line (``quantities``: the channel's line
        id -> units); one with the same tracking number is preferred, then the oldest.
        Nothing is consumed: the stock went when Rappit recorded it."""
        candidates = list(
            (
                await self.session.scalars(
                    select(Fulfillment)
                    .where(
                        Fulfillment.organization_id == self.organization_id,
                        Fulfillment.order_id == order.id,
                        Fulfillment.external_fulfillment_id.is_(None),
                        # Only one whose create was sent can exist in the channel.
                        Fulfillment.create_attempted_at.is_not(None),
                    )
                    .order_by(Fulfillment.id)
                    .execution_options(populate_existing=True)
                )
            ).all()
        )
        if not candidates:
            return None
        wanted = {key: units for key, units in quantities.items() if units > 0}
        lines = await self.lines_by_external_id([c.id for c in candidates])
        matches = [c for c in candidates if lines.get(c.id) == wanted]
        if not matches:
            return None
        same_number = [m for m in matches if m.tracking_number == tracking.number]
        claimed = (same_number or matches)[0]
        claimed.external_fulfillment_id = external_fulfillment_id
        claimed.channel_updated_at = channel_updated_at
        if claimed.status in (FulfillmentStatus.PENDING, FulfillmentStatus.FAILED):
            claimed.status = status
        if claimed.sync_status == FulfillmentSyncStatus.FAILED and channel_has(
            tracking, tracking_of(claimed)
        ):
            # Out of attempts after a lost answer, yet the channel has it, as it is here.
            claimed.sync_status = FulfillmentSyncStatus.SYNCED
            claimed.synced_revision = claimed.sync_revision
            claimed.sync_error = None
        await self.session.flush()
        return claimed

    async def lines_by_external_id(
        self, fulfillment_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, int]]:
        """Each fulfilment's units per channel line id of its order lines."""
        rows = await self.session.execute(
            select(
                FulfillmentItem.fulfillment_id, OrderItem.external_item_id, FulfillmentItem.quantity
            )
            .join(OrderItem, OrderItem.id == FulfillmentItem.order_item_id)
            .where(
                FulfillmentItem.organization_id == self.organization_id,
                FulfillmentItem.fulfillment_id.in_(fulfillment_ids),
            )
        )
        lines: dict[uuid.UUID, dict[str, int]] = {}
        for fulfillment_id, external_item_id, quantity in rows:
            per_line = lines.setdefault(fulfillment_id, {})
            per_line[external_item_id] = per_line.get(external_item_id, 0) + quantity
        return lines

    async def _by_idempotency_key(self, key: str) -> Fulfillment | None:
        return await self.session.scalar(
            select(Fulfillment).where(
                Fulfillment.organization_id == self.organization_id,
                Fulfillment.idempotency_key == key,
            )
        )

    async def _same_request(
        self, made: Fulfillment, order_id: uuid.UUID, lines: Sequence[FulfillmentLine]
    ) -> None:
        """A key names one request: reused for another order or other items, it is refused."""
        wanted: dict[uuid.UUID, int] = {}
        for line in lines:
            wanted[line.order_item_id] = wanted.get(line.order_item_id, 0) + line.quantity
        items = await self.session.execute(
            select(FulfillmentItem.order_item_id, FulfillmentItem.quantity).where(
                FulfillmentItem.organization_id == self.organization_id,
                FulfillmentItem.fulfillment_id == made.id,
            )
        )
        made_units = {row.order_item_id: row.quantity for row in items}
        if made.order_id != order_id or made_units != wanted:
            raise Conflict(
                "this Idempotency-Key was used for another fulfilment request",
                extra={"fulfillment_id": str(made.id)},
            )

    async def _insert(
        self,
        order: Order,
        external_fulfillment_id: str | None,
        tracking: Tracking | None,
        status: FulfillmentStatus,
        idempotency_key: str | None = None,
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
            "idempotency_key": idempotency_key,
            "created_at": now,
            "updated_at": now,
        }
        inserted = await self.session.scalar(
            insert_ignore(self.session, Fulfillment, values).returning(Fulfillment.id)
        )
        if inserted is not None:
            fulfillment = await self.session.get_one(Fulfillment, inserted)
            return fulfillment, True
        match: ColumnElement[bool] = Fulfillment.idempotency_key == idempotency_key
        if external_fulfillment_id is not None:
            match = (Fulfillment.order_id == order.id) & (
                Fulfillment.external_fulfillment_id == external_fulfillment_id
            )
        existing = await self.session.scalar(
            select(Fulfillment).where(Fulfillment.organization_id == self.organization_id, match)
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


def channel_has(channel: Tracking, ours: Tracking) -> bool:
    """Whether the channel's tracking is ours: every field Rappit set is the same there (a
    channel fills in what was left out, e.g. Shopify makes the URL of a known carrier)."""
    return all(
        mine is None or theirs == mine
        for theirs, mine in (
            (channel.number, ours.number),
            (channel.company, ours.company),
            (channel.url, ours.url),
        )
    )


def tracking_of(fulfillment: Fulfillment) -> Tracking:
    return Tracking(
        number=fulfillment.tracking_number,
        company=fulfillment.tracking_company,
        url=fulfillment.tracking_url,
    )


def apply_update(
    fulfillment: Fulfillment,
    *,
    tracking: Tracking | None,
    status: FulfillmentStatus | None,
    channel_updated_at: datetime | None = None,
) -> None:
    """A later change to a recorded fulfilment (new tracking, a status change). Stock was
    consumed when it was recorded; a cancellation is kept as a status, and the units are not
    put back on hand automatically (whether they came back is for a person to count).
    A state older than what is stored is old news (a webhook delivered late or out of order,
    e.g. the creation's echo after Rappit already changed the tracking) and changes nothing;
    the same time is applied (REST times have whole seconds: two changes can share one)."""
    if channel_updated_at is not None:
        known = fulfillment.channel_updated_at
        if known is not None and channel_updated_at < known:
            return
        fulfillment.channel_updated_at = channel_updated_at
    if fulfillment.sync_status == FulfillmentSyncStatus.PENDING:
        # Rappit's own change is on its way to the channel: what the channel says now is older
        # (the echo of an earlier write) and must not undo it.
        tracking = None
    if tracking is not None:
        fulfillment.tracking_number = tracking.number
        fulfillment.tracking_company = tracking.company
        fulfillment.tracking_url = tracking.url
    if status is not None:
        fulfillment.status = status
