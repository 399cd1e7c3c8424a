"""A fulfilment as Shopify shows it (the REST shape: the ``fulfillments/*`` webhook body, and
each entry of an order's ``fulfillments``), applied to Rappit's copy of its order.

One path for both ways it arrives: the webhook, and reconciliation, which re-reads the orders of
a recent window and finds there the fulfilments whose webhook never came (Shopify gives up after
8 attempts over 4 hours). Whichever comes first records it; the other matches it by the
channel's id and changes nothing, so stock is consumed once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.fulfillments.service import (
    FulfillmentLine,
    FulfillmentService,
    Tracking,
    apply_update,
)
from rappit.integrations.shopify.fulfillments import parse_timestamp
from rappit.integrations.shopify.orders import ShopifyPayloadError
from rappit.models import Fulfillment, FulfillmentStatus, Order
from rappit.orders.repository import OrderRepository

_FULFILLMENT_STATUS = {
    "success": FulfillmentStatus.SUCCESS,
    "pending": FulfillmentStatus.PENDING,
    "open": FulfillmentStatus.PENDING,
    "cancelled": FulfillmentStatus.CANCELLED,
    "error": FulfillmentStatus.FAILED,
    "failure": FulfillmentStatus.FAILED,
}
# Fulfilments in these states shipped nothing.
NOT_SHIPPED = frozenset({FulfillmentStatus.CANCELLED, FulfillmentStatus.FAILED})


class Outcome(StrEnum):
    MATCHED = "matched"  # recorded before (by id): updated, nothing consumed again
    CLAIMED = "claimed"  # one Rappit sent to Shopify whose id it had not stored yet
    NOT_SHIPPED = "not_shipped"  # cancelled or failed, and unknown: nothing to record
    NOTHING_OPEN = "nothing_open"  # its lines are fulfilled already
    NOT_HELD = "not_held"  # new, but its units are not held: left alone (``require_held``)
    RECORDED = "recorded"  # new: recorded, its stock consumed


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    external_id: str


def fulfillment_status(payload: dict[str, Any]) -> FulfillmentStatus:
    return _FULFILLMENT_STATUS.get(
        str(payload.get("status") or "success"), FulfillmentStatus.SUCCESS
    )


def tracking_of(payload: dict[str, Any]) -> Tracking:
    def first(single: str, many: str) -> str | None:
        value = payload.get(single)
        if not value and isinstance(payload.get(many), list) and payload[many]:
            value = payload[many][0]
        return str(value) if value else None

    return Tracking(
        number=first("tracking_number", "tracking_numbers"),
        company=str(payload["tracking_company"]) if payload.get("tracking_company") else None,
        url=first("tracking_url", "tracking_urls"),
    )


async def apply_channel_fulfillment(
    session: AsyncSession,
    organization_id: uuid.UUID,
    order: Order,
    payload: dict[str, Any],
    *,
    require_held: bool = False,
) -> Applied:
    """Apply one of Shopify's fulfilments of ``order``, whose row lock the caller holds.

    ``require_held``: record a new one only if every unit it ships is held by the order. A
    fulfilment found late may predate the stock figures Rappit has (a channel connected after
    it shipped, its stock counted since): taking its units from free stock would count the
    shipment twice, so it is left alone (``NOT_HELD``), and the stock comparison shows any
    difference that remains."""
    if payload.get("id") is None:
        raise ShopifyPayloadError("fulfilment without id")
    status = fulfillment_status(payload)
    external_id = str(payload["id"])
    tracking = tracking_of(payload)
    updated_at = parse_timestamp(payload.get("updated_at"))

    existing = await session.scalar(
        select(Fulfillment).where(
            Fulfillment.organization_id == organization_id,
            Fulfillment.order_id == order.id,
            Fulfillment.external_fulfillment_id == external_id,
        )
    )
    if existing is not None:
        # Ours (created in Shopify by Rappit) or seen before: match it, never count it twice.
        apply_update(existing, tracking=tracking, status=status, channel_updated_at=updated_at)
        return Applied(Outcome.MATCHED, external_id)
    # One Rappit sent to Shopify whose id it has not stored yet (this copy came first).
    sent_units = {
        str(line.get("id")): int(line.get("quantity") or 0)
        for line in payload.get("line_items") or []
    }
    service = FulfillmentService(session, organization_id)
    if await service.claim_in_flight(order, external_id, sent_units, tracking, status, updated_at):
        return Applied(Outcome.CLAIMED, external_id)
    if status in NOT_SHIPPED:
        return Applied(Outcome.NOT_SHIPPED, external_id)

    items = {
        item.external_item_id: item
        for item in await OrderRepository(session, organization_id).items(order.id)
    }
    lines: list[FulfillmentLine] = []
    for line in payload.get("line_items") or []:
        item = items.get(str(line.get("id")))
        if item is None:
            raise ShopifyPayloadError(
                f"fulfilment line {line.get('id')} is not on order {order.external_order_id}"
            )
        open_quantity = item.quantity - item.fulfilled_quantity
        quantity = min(int(line.get("quantity") or 0), open_quantity)
        if quantity > 0:
            lines.append(FulfillmentLine(item.id, quantity))
    if not lines:
        return Applied(Outcome.NOTHING_OPEN, external_id)
    if require_held and not await _all_held(session, organization_id, lines):
        return Applied(Outcome.NOT_HELD, external_id)
    await service.record(
        order, lines, external_fulfillment_id=external_id, tracking=tracking, status=status
    )
    return Applied(Outcome.RECORDED, external_id)


async def _all_held(
    session: AsyncSession, organization_id: uuid.UUID, lines: list[FulfillmentLine]
) -> bool:
    held = await OrderRepository(session, organization_id).reservations(
        [line.order_item_id for line in lines], active_only=True
    )
    units: dict[uuid.UUID, int] = {}
    for reservation in held:
        units[reservation.order_item_id] = units.get(reservation.order_item_id, 0) + (
            reservation.quantity
        )
    return all(units.get(line.order_item_id, 0) >= line.quantity for line in lines)
