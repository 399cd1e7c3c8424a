"""What each Shopify webhook topic does once a worker picks its event up."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.integrations.shopify.channel_fulfillments import (
    Outcome,
    apply_channel_fulfillment,
    fulfillment_status,
)
from rappit.integrations.shopify.inventory_push import is_push_echo, remember_channel_level
from rappit.integrations.shopify.orders import ShopifyPayloadError, map_order
from rappit.integrations.shopify.topics import ORDER_TOPICS
from rappit.inventory.service import InventoryService
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelStatus,
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
    applied = await apply_channel_fulfillment(session, org, order, payload)
    if applied.outcome == Outcome.MATCHED:
        return TopicResult(note="matched a recorded fulfilment", resource_id=order_id)
    if applied.outcome == Outcome.CLAIMED:
        return TopicResult(note="matched a fulfilment Rappit is creating", resource_id=order_id)
    if applied.outcome == Outcome.NOT_SHIPPED:
        status = fulfillment_status(payload)
        return _skipped(f"fulfilment {applied.external_id} is {status}: nothing shipped", order_id)
    if applied.outcome == Outcome.NOTHING_OPEN:
        return _skipped("fulfilment covers nothing still open on the order", order_id)
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
