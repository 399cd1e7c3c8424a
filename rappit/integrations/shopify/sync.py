"""Pulling a Shopify store into Rappit: products (variants → SKUs and listings), orders (by
``updated_at`` with an overlap, every status, through the same order service as webhooks) and
inventory levels (every location, ids chunked by 50 as the API requires).

Each page is applied in one transaction together with the run's cursor, so a crash resumes at
the next page (``rappit.sync.service``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.catalog.service import on_catalog_changed
from rappit.channels.service import credentials_of
from rappit.integrations.shopify.client import ShopifyClient
from rappit.integrations.shopify.orders import ShopifyPayloadError, map_order
from rappit.integrations.shopify.reconcile import pull_reconcile
from rappit.integrations.shopify.stock_levels import (
    ID_CHUNK,
    compare_levels,
    fetch_levels,
    load_inventory_map,
)
from rappit.kit.crypto import SecretBox
from rappit.kit.ids import uuid7
from rappit.kit.ratelimit import SharedLeakyBucket
from rappit.kit.sql import insert_ignore
from rappit.kit.types import utcnow
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelType,
    Product,
    Sku,
    StockMaster,
    SyncResource,
)
from rappit.orders.service import OrderService, UpsertOutcome
from rappit.sync.service import Puller, SyncContext, SyncRegistry

logger = logging.getLogger(__name__)

# Polls re-read this much before the last watermark: Shopify's updated_at and our clock are not
# one clock, and an order updated while a page was being read must not fall between two runs.
ORDERS_OVERLAP = timedelta(minutes=5)

ClientFactory = Callable[[Channel], ShopifyClient]


def _client_factory(secret_box: SecretBox, redis: aioredis.Redis, prefix: str) -> ClientFactory:
    limiter = SharedLeakyBucket(redis, key_prefix=f"{prefix}:ratelimit")

    def build(channel: Channel) -> ShopifyClient:
        return ShopifyClient.for_channel(channel, credentials_of(channel, secret_box), limiter)

    return build


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- orders -----------------------------------------------------------------------------------


async def pull_orders(sync: SyncContext, client: ShopifyClient) -> None:
    if sync.cursor.get("done"):
        return await _finish_orders(sync)
    since = sync.cursor.get("updated_at_min")
    if "updated_at_min" not in sync.cursor:
        watermark = _iso((sync.channel.sync_cursors or {}).get("orders"))
        since = (watermark - ORDERS_OVERLAP).isoformat() if watermark else None
    params: dict[str, Any] = {"status": "any", "order": "updated_at asc"}
    if since:
        params["updated_at_min"] = since
    newest = sync.cursor.get("newest")
    if sync.total is None:
        # For the progress shown to people; the pull itself does not depend on it.
        count_params = {k: v for k, v in params.items() if k != "order"}
        sync.total = int((await client.get("orders/count.json", count_params)).json["count"])
    async for response in client.pages(
        "orders.json", params, page_info=sync.cursor.get("page_info")
    ):
        payloads = response.json.get("orders", [])
        mapped = []
        for payload in payloads:
            try:
                mapped.append(map_order(payload))
            except ShopifyPayloadError as exc:
                sync.count("invalid")
                sync.problem("invalid_order", order_id=str(payload.get("id")), error=str(exc))
        sync.count("fetched", len(payloads))

        async def apply(session: AsyncSession, orders: list[Any] = mapped) -> None:
            channel = await session.get_one(Channel, sync.channel.id)
            service = OrderService(session, sync.organization_id)
            await service.lock_batch(channel.id, [data.external_order_id for data in orders])
            for data in orders:
                result = await service.create_or_update_from_channel(channel, data)
                sync.count(
                    {
                        UpsertOutcome.CREATED: "created",
                        UpsertOutcome.UPDATED: "updated",
                        UpsertOutcome.STALE: "unchanged",
                    }[result.outcome]
                )

        for data in mapped:
            stamp = data.updated_at.isoformat()
            newest = stamp if newest is None or _iso(stamp) > _iso(newest) else newest  # type: ignore[operator]
        cursor = {
            "updated_at_min": since,
            "page_info": response.next_page_info,
            "newest": newest,
            "done": response.next_page_info is None,
        }
        await sync.commit_page(apply, cursor)
    await _finish_orders(sync)


async def _finish_orders(sync: SyncContext) -> None:
    newest = sync.cursor.get("newest")
    if not newest:
        return

    async def advance(session: AsyncSession) -> None:
        channel = await session.get_one(Channel, sync.channel.id, with_for_update=True)
        cursors = dict(channel.sync_cursors or {})
        previous = _iso(cursors.get("orders"))
        if previous is None or _iso(newest) > previous:  # type: ignore[operator]
            cursors["orders"] = newest
            channel.sync_cursors = cursors

    await sync.commit_page(advance, dict(sync.cursor))


# --- products ---------------------------------------------------------------------------------


async def pull_products(sync: SyncContext, client: ShopifyClient) -> None:
    if sync.cursor.get("done"):
        return
    if sync.total is None:
        sync.total = int((await client.get("products/count.json")).json["count"])
    async for response in client.pages("products.json", {}, page_info=sync.cursor.get("page_info")):
        products = response.json.get("products", [])
        sync.count("fetched", len(products))

        async def apply(session: AsyncSession, page: list[dict[str, Any]] = products) -> None:
            touched = await _apply_products(session, sync, page)
            if touched:
                await on_catalog_changed(session, sync.organization_id, touched)

        await sync.commit_page(
            apply, {"page_info": response.next_page_info, "done": response.next_page_info is None}
        )


async def _apply_products(
    session: AsyncSession, sync: SyncContext, products: list[dict[str, Any]]
) -> list[Any]:
    org, channel_id = sync.organization_id, sync.channel.id
    variants = [(p, v) for p in products for v in p.get("variants") or []]
    codes: dict[str, list[str]] = {}
    for _, variant in variants:
        code = str(variant.get("sku") or "").strip()
        if code:
            codes.setdefault(code, []).append(str(variant["id"]))
    touched = []
    for product, variant in variants:
        variant_id = str(variant["id"])
        code = str(variant.get("sku") or "").strip()
        listed = await session.scalar(
            select(ChannelListing).where(
                ChannelListing.organization_id == org,
                ChannelListing.channel_id == channel_id,
                ChannelListing.external_variant_id == variant_id,
            )
        )
        if listed is not None:
            inventory_item = variant.get("inventory_item_id")
            if inventory_item is not None and listed.external_inventory_item_id is None:
                listed.external_inventory_item_id = str(inventory_item)
            sync.count("unchanged")
            continue
        if not code:
            sync.count("problems")
            sync.problem("empty_sku", product_id=str(product["id"]), variant_id=variant_id)
            continue
        if len(codes[code]) > 1:
            # Two variants claim one code: guessing which is the SKU would mis-ship stock.
            sync.count("problems")
            sync.problem("sku_collision", sku=code, variant_ids=codes[code])
            continue
        sku = await session.scalar(select(Sku).where(Sku.organization_id == org, Sku.code == code))
        if sku is None:
            product_row = Product(organization_id=org, title=str(product.get("title") or code))
            session.add(product_row)
            await session.flush()
            sku = Sku(
                organization_id=org,
                product_id=product_row.id,
                code=code,
                title=str(variant.get("title") or "") or None,
            )
            session.add(sku)
            await session.flush()
            sync.count("created")
        else:
            other = await session.scalar(
                select(ChannelListing.external_variant_id).where(
                    ChannelListing.organization_id == org,
                    ChannelListing.channel_id == channel_id,
                    ChannelListing.sku_id == sku.id,
                )
            )
            if other is not None:
                sync.count("problems")
                sync.problem("sku_collision", sku=code, variant_ids=sorted([other, variant_id]))
                continue
            sync.count("linked")
        now = utcnow()
        await session.execute(
            insert_ignore(
                session,
                ChannelListing,
                {
                    "id": uuid7(),
                    "organization_id": org,
                    "channel_id": channel_id,
                    "sku_id": sku.id,
                    "external_product_id": str(product["id"]),
                    "external_variant_id": variant_id,
                    "external_inventory_item_id": (
                        str(variant["inventory_item_id"])
                        if variant.get("inventory_item_id") is not None
                        else None
                    ),
                    "created_at": now,
                    "updated_at": now,
                },
            )
        )
        touched.append(sku.id)
    return touched


# --- inventory --------------------------------------------------------------------------------


async def pull_inventory(sync: SyncContext, client: ShopifyClient) -> None:
    async with sync.sessionmaker() as session:
        inventory_map = await load_inventory_map(session, sync.channel, client)
    for location in inventory_map.unmapped:
        sync.problem("unmapped_location", **location)
    sync.counts["unmapped_locations"] = len(inventory_map.unmapped)
    item_ids = inventory_map.item_ids
    sync.total = len(item_ids)
    start = int(sync.cursor.get("item_offset", 0))
    for offset in range(start, len(item_ids), ID_CHUNK):
        levels = await fetch_levels(
            client, item_ids[offset : offset + ID_CHUNK], inventory_map.location_ids
        )

        async def apply(session: AsyncSession, page: list[dict[str, Any]] = levels) -> None:
            for level in await compare_levels(
                session, sync.organization_id, page, inventory_map, note="channel stock sync"
            ):
                sync.count("levels")
                if level.stock_master == StockMaster.CHANNEL:
                    if level.applied:
                        sync.count("applied")
                elif level.differs:
                    sync.count("drift")
                    sync.drift[level.key] = {
                        "sku_id": str(level.sku_id),
                        "rappit_available": level.rappit_available,
                        "channel_available": level.channel_available,
                    }

        await sync.commit_page(apply, {"item_offset": offset + ID_CHUNK})


def register(
    registry: SyncRegistry, secret_box: SecretBox, redis: aioredis.Redis, prefix: str
) -> None:
    build = _client_factory(secret_box, redis, prefix)

    def bind(pull: Callable[[SyncContext, ShopifyClient], Any]) -> Puller:
        async def run(sync: SyncContext) -> None:
            async with build(sync.channel) as client:
                await pull(sync, client)

        return run

    registry.register(ChannelType.SHOPIFY, SyncResource.ORDERS, bind(pull_orders))
    registry.register(ChannelType.SHOPIFY, SyncResource.PRODUCTS, bind(pull_products))
    registry.register(ChannelType.SHOPIFY, SyncResource.INVENTORY, bind(pull_inventory))
    from rappit.integrations.shopify.bulk_import import import_orders

    registry.register(ChannelType.SHOPIFY, SyncResource.IMPORT, bind(import_orders))
    registry.register(ChannelType.SHOPIFY, SyncResource.RECONCILE, bind(pull_reconcile))
