"""Pulling a simulated Shopify store over real HTTP (the sandbox): products, orders across
pages, a crash mid-sync resumed without duplicates, a webhook and a poll of one order, and stock
drift found after a change behind Rappit's back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from rappit.integrations.shopify.client import ShopifyClient
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelType,
    Order,
    Sku,
    SyncResource,
    SyncRun,
    Warehouse,
)
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext
from rappit.runtime import Runtime
from rappit.sandbox.shopify.generator import generate
from rappit.sandbox.shopify.server import SandboxServer
from rappit.sync.processing import run_handler
from rappit.sync.service import start_run
from rappit.wiring import sync_pullers
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import TEST_SECRET_KEY

DOMAIN = "sync-shop.myshopify.com"
API = "/admin/api/2026-10"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        server.call(lambda: server.state.create_shop(DOMAIN, access_token="shpat_sync"))
        server.call(lambda: generate(server.state, DOMAIN, products=30, orders=300, seed=7))
        yield server


@pytest.fixture
async def channel(database: TestDatabase, tenant: Tenant, sandbox: SandboxServer) -> Channel:
    shop = sandbox.state.shops[DOMAIN]
    async with unit_of_work(database.sessionmaker) as session:
        channel = Channel(
            organization_id=tenant.organization_id,
            type=ChannelType.SHOPIFY,
            name="Sync shop",
            shop_domain=DOMAIN,
            api_version="2026-10",
            api_base_url=sandbox.shop_url(DOMAIN),
            credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
                {"access_token": shop.access_token, "webhook_secret": shop.webhook_secret}
            ),
            settings={},
            sync_cursors={},
        )
        session.add(channel)
    return channel


def _shop_get(sandbox: SandboxServer, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{sandbox.shop_url(DOMAIN)}{API}/{path}",
        params=params,
        headers={"X-Shopify-Access-Token": "shpat_sync"},
    )
    response.raise_for_status()
    return response.json()


async def _sync(runtime: Runtime, channel: Channel, resource: SyncResource) -> SyncRun:
    async with unit_of_work(runtime.sessionmaker) as session:
        run, _ = await start_run(
            session, channel.organization_id, channel.id, resource, send_job=False
        )
    handler = run_handler(runtime.sessionmaker, sync_pullers(runtime))
    await handler(
        JobContext(
            QueueName.SHOPIFY_SYNC,
            "sync.run",
            f"sync-run.{run.id}",
            {"organization_id": str(run.organization_id), "run_id": str(run.id)},
            1,
            5,
        )
    )
    async with runtime.sessionmaker() as session:
        return await session.get_one(SyncRun, run.id)


async def test_products_become_skus_and_listings(
    queue_runtime: Runtime, database: TestDatabase, channel: Channel, sandbox: SandboxServer
) -> None:
    products = _shop_get(sandbox, "products.json", limit=250)["products"]
    variants = [v for p in products for v in p["variants"]]
    codes = [str(v.get("sku") or "").strip() for v in variants]
    usable = {c for c in codes if c and codes.count(c) == 1}

    run = await _sync(queue_runtime, channel, SyncResource.PRODUCTS)

    assert run.status == "COMPLETED"
    assert run.counts["fetched"] == run.total == len(products)
    async with database.sessionmaker() as session:
        skus = set((await session.scalars(select(Sku.code))).all())
        listings = await session.scalar(select(func.count()).select_from(ChannelListing))
    assert skus == usable
    assert listings == len(usable)
    # Every variant that cannot be a SKU is reported, one problem each, never guessed.
    reported = [p for p in run.problems if p["kind"] in ("empty_sku", "sku_collision")]
    assert len(reported) == sum(1 for c in codes if not c or codes.count(c) > 1)

    again = await _sync(queue_runtime, channel, SyncResource.PRODUCTS)
    assert again.counts.get("created", 0) == 0
    assert again.counts["unchanged"] == len(usable)


async def test_orders_across_pages_match_the_store(
    queue_runtime: Runtime, database: TestDatabase, channel: Channel, sandbox: SandboxServer
) -> None:
    total = _shop_get(sandbox, "orders/count.json", status="any")["count"]
    assert total == 300

    run = await _sync(queue_runtime, channel, SyncResource.ORDERS)

    assert run.status == "COMPLETED"
    assert (run.counts["fetched"], run.counts["created"], run.total) == (total, total, total)
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == total
        stored = await session.get_one(Channel, channel.id)
        assert stored.sync_cursors["orders"] == run.cursor["newest"]

    # The next poll re-reads only the overlap window and changes nothing.
    again = await _sync(queue_runtime, channel, SyncResource.ORDERS)
    assert again.counts.get("created", 0) == 0
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == total


async def test_a_crash_mid_sync_resumes_without_duplicates(
    queue_runtime: Runtime,
    database: TestDatabase,
    channel: Channel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = ShopifyClient.get
    calls = {"orders": 0}

    async def flaky_get(self: ShopifyClient, path: str, params: Any = None) -> Any:
        if path == "orders.json":
            calls["orders"] += 1
            if calls["orders"] == 2:
                raise httpx.ReadError("connection reset by peer")
        return await original(self, path, params)

    monkeypatch.setattr(ShopifyClient, "get", flaky_get)
    async with unit_of_work(queue_runtime.sessionmaker) as session:
        run, _ = await start_run(
            session, channel.organization_id, channel.id, SyncResource.ORDERS, send_job=False
        )
    handler = run_handler(queue_runtime.sessionmaker, sync_pullers(queue_runtime))
    context = {"organization_id": str(run.organization_id), "run_id": str(run.id)}
    with pytest.raises(httpx.ReadError):
        await handler(JobContext(QueueName.SHOPIFY_SYNC, "sync.run", "x", context, 1, 5))
    async with database.sessionmaker() as session:
        halfway = await session.get_one(SyncRun, run.id)
        assert (halfway.status, halfway.counts["created"]) == ("PENDING", 250)
        assert halfway.cursor["page_info"]

    await handler(JobContext(QueueName.SHOPIFY_SYNC, "sync.run", "x", context, 2, 5))
    async with database.sessionmaker() as session:
        done = await session.get_one(SyncRun, run.id)
        assert (done.status, done.counts["created"], done.counts["fetched"]) == (
            "COMPLETED",
            300,
            300,
        )
        assert await session.scalar(select(func.count()).select_from(Order)) == 300


async def test_inventory_reports_unmapped_locations_and_drift(
    queue_runtime: Runtime,
    database: TestDatabase,
    channel: Channel,
    sandbox: SandboxServer,
    tenant: Tenant,
) -> None:
    await _sync(queue_runtime, channel, SyncResource.PRODUCTS)
    locations = _shop_get(sandbox, "locations.json")["locations"]
    async with unit_of_work(database.sessionmaker) as session:
        warehouse = Warehouse(organization_id=tenant.organization_id, code="W", name="W")
        session.add(warehouse)
        await session.flush()
        session.add(
            ChannelLocation(
                organization_id=tenant.organization_id,
                channel_id=channel.id,
                external_location_id=str(locations[0]["id"]),
                warehouse_id=warehouse.id,
                stock_master="channel",
            )
        )
    first = await _sync(queue_runtime, channel, SyncResource.INVENTORY)
    assert first.status == "COMPLETED"
    assert first.counts["unmapped_locations"] == len(locations) - 1
    assert {p["location_id"] for p in first.problems if p["kind"] == "unmapped_location"} == {
        str(loc["id"]) for loc in locations[1:]
    }
    assert first.counts.get("drift", 0) == 0

    # Behind Rappit's back: the channel stock moves, and Rappit becomes the master.
    async with database.sessionmaker() as session:
        listing = (
            await session.scalars(
                select(ChannelListing).order_by(ChannelListing.external_inventory_item_id)
            )
        ).first()
        assert listing is not None
    async with unit_of_work(database.sessionmaker) as session:
        location = (await session.scalars(select(ChannelLocation))).one()
        location.stock_master = "rappit"
    shop = sandbox.state.shops[DOMAIN]
    sandbox.call(
        lambda: sandbox.state.set_available(
            shop,
            int(listing.external_inventory_item_id or 0),
            int(locations[0]["id"]),
            delta=3,
            connect=True,
        )
    )
    second = await _sync(queue_runtime, channel, SyncResource.INVENTORY)
    key = f"{listing.external_inventory_item_id}@{locations[0]['id']}"
    assert second.counts["drift"] == 1
    assert second.drift[key]["channel_available"] - second.drift[key]["rappit_available"] == 3


async def test_a_webhook_and_a_poll_of_one_order_make_one_order(
    queue_runtime: Runtime, database: TestDatabase, channel: Channel, sandbox: SandboxServer
) -> None:
    from rappit.app import create_app
    from tests.integrations.shopify.test_webhook_processing import process_pending
    from tests.support.shopify import post_webhook

    newest = _shop_get(sandbox, "orders.json", status="any", limit=1, order="updated_at desc")
    payload = newest["orders"][0]
    shop = sandbox.state.shops[DOMAIN]
    transport = httpx.ASGITransport(app=create_app(runtime=queue_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as client:
        response = await post_webhook(
            client, "orders/updated", payload, shop=DOMAIN, secret=shop.webhook_secret
        )
        assert response.json() == {"status": "enqueued"}
    await process_pending(database)
    run = await _sync(queue_runtime, channel, SyncResource.ORDERS)

    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 300
        matching = await session.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.external_order_id == str(payload["id"]))
        )
    assert matching == 1
    # The poll saw the webhook's order as already current.
    assert (
        run.counts["created"],
        run.counts.get("unchanged", 0) + run.counts.get("updated", 0),
    ) == (
        299,
        1,
    )
