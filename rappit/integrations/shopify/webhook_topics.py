"""What each Shopify webhook topic does once a worker picks its event up."""

from __future__ import annotations

import logging
from decimal import Decimal
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
from rappit.integrations.shopify.inventory_push import is_push_echo, remember_channel_level
from rappit.integrations.shopify.orders import ShopifyPayloadError, map_order
from rappit.integrations.shopify.topics import ORDER_TOPICS
from rappit.inventory.service import InventoryService
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelStatus,
    Fulfillment,
    FulfillmentStatus,
    OrderItem,
    StockMaster,
    WebhookEvent,
    WebhookEventStatus,
)
from rappit.orders import privacy
from rappit.orders.repository import OrderRepository
from rappit.orders.service import OrderService, UpsertOutcome
from rappit.webhooks.processing import TopicRegistry, TopicResult
from rappit.webhooks.service import redact_payloads

logger = logging.getLogger(__name__)

SOURCE = "shopify"

_FULFILLMENT_STATUS = {
    "success": FulfillmentStatus.SUCCESS,
    "pending": FulfillmentStatus.PENDING,
    "open": FulfillmentStatus.PENDING,
    "cancelled": FulfillmentStatus.CANCELLED,
    "error": FulfillmentStatus.FAILED,
    "failure": FulfillmentStatus.FAILED,
}
# Fulfilments in these states shipped nothing.
_NOT_SHIPPED = {FulfillmentStatus.CANCELLED, FulfillmentStatus.FAILED}


class OrderNotYetKnown(Exception):
    """A fulfilment arrived before its order (no ordering guarantee): retried with backoff,
    and reconciliation polling catches the order if it never comes."""


def _payload(event: WebhookEvent) -> dict[str, Any]:
    if not isinstance(event.payload, dict):
        raise ShopifyPayloadError("payload is not a JSON object")
    return event.payload


def _skipped(note: str, resource_id: str | None = None) -> TopicResult:
    return TopicResult(WebhookEventStatus.SKIPPED, note, resource_id)


async def handle_order(session: AsyncSession, channel: Channel, event: WebhookEvent) -> TopicResult:
    data = map_order(_payload(event))
    if channel.status != ChannelStatus.ACTIVE:
        return _skipped("channel is disconnected", data.external_order_id)
    result = await OrderService(session, channel.organization_id).create_or_update_from_channel(
        channel, data
    )
    if result.outcome == UpsertOutcome.STALE:
        return _skipped(
            f"stale: the stored order is newer than updated_at {data.updated_at.isoformat()}",
            data.external_order_id,
        )
    return TopicResult(resource_id=data.external_order_id)


def _tracking(payload: dict[str, Any]) -> Tracking:
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


async def handle_fulfillment(
    session: AsyncSession, channel: Channel, event: WebhookEvent
) -> TopicResult:
    payload = _payload(event)
    if payload.get("id") is None or payload.get("order_id") is None:
        raise ShopifyPayloadError("fulfilment without id or order_id")
    order_id = str(payload["order_id"])
    if channel.status != ChannelStatus.ACTIVE:
        return _skipped("channel is disconnected", order_id)
    org = channel.organization_id
    order = await OrderRepository(session, org).lock_existing(channel.id, order_id)
    if order is None:
        raise OrderNotYetKnown(f"order {order_id} is not known yet")
    status = _FULFILLMENT_STATUS.get(
        str(payload.get("status") or "success"), FulfillmentStatus.SUCCESS
    )
    external_id = str(payload["id"])
    tracking = _tracking(payload)
    updated_at = parse_timestamp(payload.get("updated_at"))

    existing = await session.scalar(
        select(Fulfillment).where(
            Fulfillment.organization_id == org,
            Fulfillment.order_id == order.id,
            Fulfillment.external_fulfillment_id == external_id,
        )
    )
    if existing is not None:
        # Ours (created in Shopify by Rappit) or seen before: match it, never count it twice.
        apply_update(existing, tracking=tracking, status=status, channel_updated_at=updated_at)
        return TopicResult(note="matched a recorded fulfilment", resource_id=order_id)
    # One Rappit sent to Shopify whose id it has not stored yet (this webhook came first).
    sent_units = {
        str(line.get("id")): int(line.get("quantity") or 0)
        for line in payload.get("line_items") or []
    }
    if await FulfillmentService(session, org).claim_in_flight(
        order, external_id, sent_units, tracking, status, updated_at
    ):
        return TopicResult(note="matched a fulfilment Rappit is creating", resource_id=order_id)
    if status in _NOT_SHIPPED:
        return _skipped(f"fulfilment {external_id} is {status}: nothing shipped", order_id)

    items = {
        item.external_item_id: item
        for item in (
            await session.scalars(
                select(OrderItem).where(
                    OrderItem.organization_id == org, OrderItem.order_id == order.id
                )
            )
        ).all()
    }
    lines: list[FulfillmentLine] = []
    for line in payload.get("line_items") or []:
        item = items.get(str(line.get("id")))
        if item is None:
            raise ShopifyPayloadError(
                f"fulfilment line {line.get('id')} is not on order {order_id}"
            )
        open_quantity = item.quantity - item.fulfilled_quantity
        quantity = min(int(line.get("quantity") or 0), open_quantity)
        if quantity > 0:
            lines.append(FulfillmentLine(item.id, quantity))
    if not lines:
        return _skipped("fulfilment covers nothing still open on the order", order_id)
    await FulfillmentService(session, org).record(
        order, lines, external_fulfillment_id=external_id, tracking=tracking, status=status
    )
    return TopicResult(resource_id=order_id)


async def handle_inventory_level(
    session: AsyncSession, channel: Channel, event: WebhookEvent
) -> TopicResult:
    payload = _payload(event)
    item_id, location_id = payload.get("inventory_item_id"), payload.get("location_id")
    if item_id is None or location_id is None:
        raise ShopifyPayloadError("inventory level without inventory_item_id or location_id")
    org = channel.organization_id
    location = await session.scalar(
        select(ChannelLocation).where(
            ChannelLocation.organization_id == org,
            ChannelLocation.channel_id == channel.id,
            ChannelLocation.external_location_id == str(location_id),
        )
    )
    if location is None:
        return _skipped(f"location {location_id} is not mapped to a warehouse")
    available = payload.get("available")
    if available is not None and await is_push_echo(
        session, channel, str(item_id), str(location_id), available
    ):
        return _skipped(f"echo of Rappit's push: available {available} is the figure it pushed")
    if location.stock_master != StockMaster.CHANNEL:
        if available is not None:
            await remember_channel_level(
                session,
                channel,
                str(item_id),
                str(location_id),
                available,
                payload.get("updated_at"),
            )
        return TopicResult(note="recorded: Rappit is the stock master for this location")
    listing = await session.scalar(
        select(ChannelListing).where(
            ChannelListing.organization_id == org,
            ChannelListing.channel_id == channel.id,
            ChannelListing.external_inventory_item_id == str(item_id),
        )
    )
    if listing is None:
        return _skipped(f"inventory item {item_id} is not linked to a SKU")
    if available is None:
        return TopicResult(note="recorded: no available quantity in the update")
    inventory = InventoryService(session, org)
    await inventory.repository.ensure_levels([(listing.sku_id, location.warehouse_id)])
    level = await inventory.repository.get_level(listing.sku_id, location.warehouse_id)
    reserved = level.reserved if level is not None else 0
    # Shopify's "available" already leaves out what its orders committed, which Rappit holds
    # as reserved: on hand is what is free plus what is held.
    await inventory.adjust(
        sku_id=listing.sku_id,
        warehouse_id=location.warehouse_id,
        set_to=max(int(Decimal(str(available))), 0) + reserved,
        note="channel stock update",
        reference=f"shopify:{event.external_event_id}",
    )
    return TopicResult()


async def handle_uninstalled(
    session: AsyncSession, channel: Channel, event: WebhookEvent
) -> TopicResult:
    channel.status = ChannelStatus.DISCONNECTED
    return TopicResult(note="channel disconnected; its data is kept")


async def handle_data_request(
    session: AsyncSession, channel: Channel, event: WebhookEvent
) -> TopicResult:
    customer = _payload(event).get("customer") or {}
    return TopicResult(
        note=(
            f"recorded; export with GET /api/v1/channels/{channel.id}/customers/"
            f"{customer.get('id')}/data"
        )
    )


async def handle_customer_redact(
    session: AsyncSession, channel: Channel, event: WebhookEvent
) -> TopicResult:
    payload = _payload(event)
    customer = payload.get("customer") or {}
    customer_id = str(customer["id"]) if customer.get("id") is not None else None
    order_ids = [str(o) for o in payload.get("orders_to_redact") or []]
    erased = await privacy.redact_customer(
        session, channel.organization_id, channel.id, customer_id, order_ids
    )
    await redact_payloads(session, channel, sorted(set(erased) | set(order_ids)))
    return TopicResult(note=f"customer data erased from {len(erased)} order(s)")


async def handle_shop_redact(
    session: AsyncSession, channel: Channel, event: WebhookEvent
) -> TopicResult:
    erased = await privacy.redact_shop(session, channel.organization_id, channel.id)
    await redact_payloads(session, channel, None)
    return TopicResult(note=f"customer data erased from {len(erased)} order(s)")


def register(topics: TopicRegistry) -> None:
    for topic in ORDER_TOPICS:
        topics.register(SOURCE, topic, handle_order)
    topics.register(SOURCE, "fulfillments/create", handle_fulfillment)
    topics.register(SOURCE, "fulfillments/update", handle_fulfillment)
    topics.register(SOURCE, "inventory_levels/update", handle_inventory_level)
    topics.register(SOURCE, "app/uninstalled", handle_uninstalled)
    topics.register(SOURCE, "customers/data_request", handle_data_request)
    topics.register(SOURCE, "customers/redact", handle_customer_redact)
    topics.register(SOURCE, "shop/redact", handle_shop_redact)
