"""Reconciliation against a simulated Shopify store over real HTTP (the sandbox), with the
store changed behind Rappit's back through the sandbox's control API: a missed order is found
and healed, an order changed in the store is found stale and healed, stock that moved is
reported with its figures (and applied where the channel is the stock master), a repeated
reconciliation finds nothing, the window bounds what is re-read, a crash resumes without
counting twice, and the drift endpoint shows the latest figures to their organisation only."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from rappit.app import create_app
from rappit.integrations.shopify.client import ShopifyClient
from rappit.integrations.shopify.orders import map_order
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelType,
    Fulfillment,
    Order,
    OrderItem,
    Reservation,
    Sku,
    StockLevel,
    SyncResource,
    SyncRun,
    Warehouse,
)
from rappit.orders.service import OrderService
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext
from rappit.runtime import Runtime
from rappit.sandbox.shopify.server import SandboxServer
from rappit.sync.processing import run_handler
from rappit.sync.reconciliation import reconcile_cursor
from rappit.sync.service import start_run
from rappit.wiring import sync_pullers
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import TEST_SECRET_KEY, assert_ledger_replays
from tests.support.waiting import wait_until

API = "/admin/api/2026-10"
DAY = 24 * 3600


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@dataclass
class Store:
    """A sandbox shop whose products and stock Rappit has pulled, with its first location
    mapped to warehouse W (the channel is the stock master there) and its second unmapped."""

    sandbox: SandboxServer
    domain: str
    token: str
    channel: Channel
    location_id: str
    unmapped_location_id: str
    unmapped_location_name: str
    # SKU code -> the store's inventory item id, for every SKU Rappit linked.
    items: dict[str, str]

    @property
    def unmapped_problem(self) -> dict[str, str]:
        return {
            "kind": "unmapped_location",
            "location_id": self.unmapped_location_id,
            "name": self.unmapped_location_name,
        }

    def control(self, method: str, path: str, **body: Any) -> Any:
        response = httpx.request(
            method, f"{self.sandbox.base_url}/_sandbox/shops/{self.domain}/{path}", json=body
        )
        response.raise_for_status()
        return response.json()

    def admin_get(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.sandbox.shop_url(self.domain)}{API}/{path}",
            params=params,
            headers={"X-Shopify-Access-Token": self.token},
        )
        response.raise_for_status()
        return response.json()

    def available(self, sku: str) -> int:
        [level] = self.admin_get(
            "inventory_levels.json",
            inventory_item_ids=self.items[sku],
            location_ids=self.location_id,
        )["inventory_levels"]
        return int(level["available"])

    def place_order(self, sku: str, quantity: int, **options: Any) -> dict[str, Any]:
        """An order placed at the checkout, whose webhook Rappit never gets (the shop has no
        webhook subscriptions)."""
        order: dict[str, Any] = self.control(
            "POST", "orders", line_items=[{"sku": sku, "quantity": quantity}], **options
        )["order"]
        return order


def _create_shop(sandbox: SandboxServer, domain: str) -> dict[str, Any]:
    """Three products, one SKU each, stocked at two locations; no orders, no webhooks."""
    response = httpx.post(
        f"{sandbox.base_url}/_sandbox/shops",
        json={"domain": domain, "generate": {"products": 3, "seed": 5}},
    )
    assert response.status_code == 201
    shop: dict[str, Any] = response.json()["shop"]
    return shop


def _move_clock(sandbox: SandboxServer, seconds: int) -> None:
    httpx.post(f"{sandbox.base_url}/_sandbox/clock", json={"advance": seconds}).raise_for_status()


def _job(run: SyncRun, attempt: int = 1) -> JobContext:
    return JobContext(
        QueueName.SHOPIFY_SYNC,
        "sync.run",
        f"sync-run.{run.id}",
        {"organization_id": str(run.organization_id), "run_id": str(run.id)},
        attempt,
        5,
    )


async def _run(
    runtime: Runtime, channel: Channel, resource: SyncResource, cursor: dict[str, Any] | None = None
) -> SyncRun:
    async with unit_of_work(runtime.sessionmaker) as session:
        run, _ = await start_run(
            session, channel.organization_id, channel.id, resource, cursor=cursor, send_job=False
        )
    await run_handler(runtime.sessionmaker, sync_pullers(runtime))(_job(run))
    async with runtime.sessionmaker() as session:
        return await session.get_one(SyncRun, run.id)


async def _reconcile(runtime: Runtime, store: Store) -> SyncRun:
    run = await _run(runtime, store.channel, SyncResource.RECONCILE, reconcile_cursor(24))
    assert (run.status, run.error) == ("COMPLETED", None)
    return run


DRIFT_COUNTS = (
    "orders_missing",
    "orders_stale",
    "orders_healed",
    "fulfillments_healed",
    "stock_differing",
    "stock_healed",
)
NO_DRIFT = dict.fromkeys(DRIFT_COUNTS, 0)


def _drift_counts(run: SyncRun) -> dict[str, int]:
    return {name: run.counts[name] for name in DRIFT_COUNTS}


@pytest.fixture
async def store(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant, sandbox: SandboxServer
) -> Store:
    domain = f"rec-{uuid.uuid4().hex[:10]}.myshopify.com"
    shop = _create_shop(sandbox, domain)
    first, second = (str(i) for i in shop["location_ids"])
    async with unit_of_work(database.sessionmaker) as session:
        channel = Channel(
            organization_id=tenant.organization_id,
            type=ChannelType.SHOPIFY,
            name="Reconciled shop",
            shop_domain=domain,
            api_version="2026-10",
            api_base_url=sandbox.shop_url(domain),
            credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
                {"access_token": shop["access_token"], "webhook_secret": shop["webhook_secret"]}
            ),
            settings={},
            sync_cursors={},
        )
        session.add(channel)
    products = await _run(queue_runtime, channel, SyncResource.PRODUCTS)
    assert products.counts["created"] == 3
    async with unit_of_work(database.sessionmaker) as session:
        warehouse = Warehouse(organization_id=tenant.organization_id, code="W", name="W")
        session.add(warehouse)
        await session.flush()
        session.add(
            ChannelLocation(
                organization_id=tenant.organization_id,
                channel_id=channel.id,
                external_location_id=first,
                warehouse_id=warehouse.id,
                stock_master="channel",
            )
        )
        items = {
            code: str(item)
            for code, item in (
                await session.execute(
                    select(Sku.code, ChannelListing.external_inventory_item_id).join(
                        ChannelListing, ChannelListing.sku_id == Sku.id
                    )
                )
            ).all()
        }
    inventory = await _run(queue_runtime, channel, SyncResource.INVENTORY)
    assert inventory.counts["levels"] == 3
    token = shop["access_token"]
    store = Store(sandbox, domain, token, channel, first, second, "", items)
    names = {str(loc["id"]): loc["name"] for loc in store.admin_get("locations.json")["locations"]}
    store.unmapped_location_name = names[second]
    return store


async def _level(database: TestDatabase, sku: str) -> tuple[int, int]:
    async with database.sessionmaker() as session:
        row = (
            await session.execute(
                select(StockLevel.on_hand, StockLevel.reserved)
                .join(Sku, Sku.id == StockLevel.sku_id)
                .where(Sku.code == sku)
            )
        ).one()
    return row[0], row[1]


async def _order(database: TestDatabase, external_id: str) -> tuple[str, list[tuple[int, bool]]]:
    """The order's status and its reservations as (quantity, released)."""
    async with database.sessionmaker() as session:
        order = (
            await session.scalars(select(Order).where(Order.external_order_id == external_id))
        ).one()
        reservations = (
            await session.execute(
                select(Reservation.quantity, Reservation.released_at)
                .join(OrderItem, OrderItem.id == Reservation.order_item_id)
                .where(OrderItem.order_id == order.id)
            )
        ).all()
    return order.status, [(q, released is not None) for q, released in reservations]


def _utc(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone(UTC).isoformat()


async def test_a_missed_order_is_found_healed_and_reserved(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    before = store.available("TB-00001")
    order = store.place_order("TB-00001", 2)
    assert store.control("GET", "webhook_deliveries") == {"deliveries": []}
    assert store.available("TB-00001") == before - 2

    run = await _reconcile(queue_runtime, store)

    assert run.counts["orders_checked"] == 1
    assert _drift_counts(run) == {**NO_DRIFT, "orders_missing": 1, "orders_healed": 1}
    assert run.drift["orders"] == [
        {
            "external_order_id": str(order["id"]),
            "name": order["name"],
            "drift": "missing",
            "rappit_updated_at": None,
            "channel_updated_at": _utc(order["updated_at"]),
            "status": "RESERVED",
            "healed": True,
        }
    ]
    assert await _order(database, str(order["id"])) == ("RESERVED", [(2, False)])
    # The store moved the units to committed, Rappit reserved them: the stock agrees.
    assert run.counts["stock_checked"] == 3
    assert run.drift["stock"] == []
    assert await _level(database, "TB-00001") == (before, 2)
    assert run.counts["unmapped_locations"] == 1
    assert run.problems == [store.unmapped_problem]

    again = await _reconcile(queue_runtime, store)
    assert again.counts["orders_checked"] == 1
    assert _drift_counts(again) == NO_DRIFT
    assert again.drift == {"orders": [], "fulfillments": [], "stock": []}
    async with database.sessionmaker() as session:
        orders = (await session.scalars(select(Order.external_order_id))).all()
    assert orders == [str(order["id"])]


async def test_an_order_changed_behind_rappits_back_is_stale_and_healed(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    before = store.available("BP-00002")
    order = store.place_order("BP-00002", 3)
    await _reconcile(queue_runtime, store)
    assert await _order(database, str(order["id"])) == ("RESERVED", [(3, False)])

    cancelled = store.control("POST", f"orders/{order['id']}/cancel", restock=True)["order"]
    assert store.available("BP-00002") == before
    run = await _reconcile(queue_runtime, store)

    assert _drift_counts(run) == {**NO_DRIFT, "orders_stale": 1, "orders_healed": 1}
    assert run.drift["orders"] == [
        {
            "external_order_id": str(order["id"]),
            "name": order["name"],
            "drift": "stale",
            "rappit_updated_at": _utc(order["updated_at"]),
            "channel_updated_at": _utc(cancelled["updated_at"]),
            "status": "CANCELLED",
            "healed": True,
        }
    ]
    # The reservation went back, as the store restocked: the stock agrees again.
    assert await _order(database, str(order["id"])) == ("CANCELLED", [(3, True)])
    assert await _level(database, "BP-00002") == (before, 0)
    assert run.drift["stock"] == []

    again = await _reconcile(queue_runtime, store)
    assert _drift_counts(again) == NO_DRIFT


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # real row locks
@pytest.mark.parametrize("resource", [SyncResource.RECONCILE, SyncResource.ORDERS])
async def test_a_page_locks_its_orders_before_stock_so_a_webhook_cannot_deadlock_it(
    queue_runtime: Runtime, database: TestDatabase, store: Store, resource: SyncResource
) -> None:
    """Two orders of one SKU, both cancelled in the store. While a reconciliation or an orders
    pull applies the page, a webhook's transaction holds the order the page applies last and
    then takes the SKU's stock row, as processing that order does. The page locks all its
    orders before any stock, so it waits for the webhook instead of holding the stock row the
    webhook needs (a deadlock: PostgreSQL would abort one of them)."""
    first = store.place_order("TB-00001", 1)
    second = store.place_order("TB-00001", 1)
    await _reconcile(queue_runtime, store)
    for order in (first, second):
        store.control("POST", f"orders/{order['id']}/cancel", restock=True)
    if resource == SyncResource.RECONCILE:  # the store's default order
        listed = store.admin_get("orders.json", status="any")["orders"]
        assert sorted(o["id"] for o in listed) == sorted([first["id"], second["id"]])
        last = str(listed[-1]["id"])
    else:  # a pull asks for updated_at ascending: the second cancellation comes last
        last = str(second["id"])

    async with database.sessionmaker() as webhook:
        await webhook.execute(
            select(Order.id).where(Order.external_order_id == last).with_for_update()
        )
        applying = asyncio.create_task(
            _run(
                queue_runtime,
                store.channel,
                resource,
                reconcile_cursor(24) if resource == SyncResource.RECONCILE else None,
            )
        )

        async def page_waits_for_a_lock() -> bool:
            async with database.engine.connect() as probe:
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            return bool(waiting)

        await wait_until(page_waits_for_a_lock, message="the page to wait for the held order")
        # The webhook goes on to the stock of the order's SKU, then commits.
        await webhook.execute(
            select(StockLevel.id)
            .join(Sku, Sku.id == StockLevel.sku_id)
            .where(Sku.code == "TB-00001")
            .with_for_update()
        )
        await webhook.commit()

    run = await applying
    assert (run.status, run.error) == ("COMPLETED", None)
    if resource == SyncResource.RECONCILE:
        assert _drift_counts(run) == {**NO_DRIFT, "orders_stale": 2, "orders_healed": 2}
    else:
        assert run.counts["updated"] == 2
    for order in (first, second):
        assert (await _order(database, str(order["id"])))[0] == "CANCELLED"


def _fulfil_in_the_store(store: Store, order_id: int) -> int:
    """The merchant ships the whole order in Shopify's admin; returns the fulfilment's id."""

    def fulfil() -> int:
        state = store.sandbox.state
        shop = state.shop(store.domain)
        fulfillment_order = state.fulfillment_order(shop, shop.orders[order_id])
        assert fulfillment_order is not None
        made = state.create_fulfillment(
            shop,
            [(fulfillment_order.id, None)],
            tracking_company="DHL Express",
            tracking_numbers=["JD014600006281230704"],
        )
        return made.id

    return store.sandbox.call(fulfil)


async def test_a_fulfilment_whose_webhook_never_came_is_recorded_once(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    """Rappit got ``orders/updated`` (the order shipped) but never ``fulfillments/create``:
    the shipped units stay held until reconciliation finds the fulfilment on the order and
    records it, consuming them once."""
    before = store.available("TB-00001")
    order = store.place_order("TB-00001", 2)
    await _reconcile(queue_runtime, store)
    assert await _level(database, "TB-00001") == (before, 2)

    fulfillment_id = _fulfil_in_the_store(store, int(order["id"]))
    shipped = store.admin_get(f"orders/{order['id']}.json")["order"]
    async with unit_of_work(database.sessionmaker) as session:
        channel = await session.get_one(Channel, store.channel.id)
        await OrderService(session, channel.organization_id).create_or_update_from_channel(
            channel, map_order(shipped)
        )
    # The order is current and shows as shipped; its units are still held, on hand unchanged.
    assert await _order(database, str(order["id"])) == ("FULFILLED", [(2, False)])
    assert await _level(database, "TB-00001") == (before, 2)

    run = await _reconcile(queue_runtime, store)

    assert _drift_counts(run) == {**NO_DRIFT, "fulfillments_healed": 1}
    assert run.counts["fulfillments_checked"] == 1
    assert run.drift["fulfillments"] == [
        {
            "external_order_id": str(order["id"]),
            "external_fulfillment_id": str(fulfillment_id),
            "drift": "missing",
            "outcome": "recorded",
        }
    ]
    assert await _level(database, "TB-00001") == (before - 2, 0)
    assert store.available("TB-00001") == before - 2
    assert run.drift["stock"] == []
    async with database.sessionmaker() as session:
        recorded = (await session.scalars(select(Fulfillment))).one()
        await assert_ledger_replays(session, store.channel.organization_id)
    assert (
        recorded.external_fulfillment_id,
        recorded.tracking_company,
        recorded.tracking_number,
        recorded.status,
    ) == (str(fulfillment_id), "DHL Express", "JD014600006281230704", "success")

    # Known now: the next run records nothing and consumes nothing.
    again = await _reconcile(queue_runtime, store)
    assert _drift_counts(again) == NO_DRIFT
    assert "fulfillments_checked" not in again.counts
    assert await _level(database, "TB-00001") == (before - 2, 0)


async def test_a_fulfilment_of_units_rappit_never_held_is_listed_not_recorded(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    """An order placed and shipped while Rappit heard nothing: its units were never held, and
    Rappit cannot tell whether its stock figures came before or after the shipment, so the
    fulfilment is not taken from stock again; the stock check settles the level (the channel
    is the stock master at this location)."""
    before = store.available("TB-00001")
    order = store.place_order("TB-00001", 2)
    fulfillment_id = _fulfil_in_the_store(store, int(order["id"]))
    assert store.available("TB-00001") == before - 2

    run = await _reconcile(queue_runtime, store)

    assert _drift_counts(run) == {
        **NO_DRIFT,
        "orders_missing": 1,
        "orders_healed": 1,
        "stock_differing": 1,
        "stock_healed": 1,
    }
    assert (run.counts["fulfillments_checked"], run.counts["fulfillments_not_held"]) == (1, 1)
    assert run.drift["fulfillments"] == [
        {
            "external_order_id": str(order["id"]),
            "external_fulfillment_id": str(fulfillment_id),
            "drift": "missing",
            "outcome": "not_held",
        }
    ]
    assert await _order(database, str(order["id"])) == ("FULFILLED", [])
    assert await _level(database, "TB-00001") == (before - 2, 0)
    async with database.sessionmaker() as session:
        assert (await session.scalars(select(Fulfillment))).all() == []
        await assert_ledger_replays(session, store.channel.organization_id)


async def test_stock_moved_in_the_store_is_reported_and_applied_where_the_channel_is_master(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    on_hand, _ = await _level(database, "TS-00003")
    store.control(
        "POST",
        "inventory_levels",
        inventory_item_id=int(store.items["TS-00003"]),
        location_id=int(store.location_id),
        delta=3,
    )

    run = await _reconcile(queue_runtime, store)

    assert run.counts["stock_checked"] == 3
    assert _drift_counts(run) == {**NO_DRIFT, "stock_differing": 1, "stock_healed": 1}
    [entry] = run.drift["stock"]
    assert entry == {
        "sku": "TS-00003",
        "sku_id": entry["sku_id"],
        "inventory_item_id": store.items["TS-00003"],
        "location_id": store.location_id,
        "warehouse_id": entry["warehouse_id"],
        "stock_master": "channel",
        "rappit_available": on_hand,
        "channel_available": on_hand + 3,
        "difference": 3,
        "healed": True,
    }
    assert await _level(database, "TS-00003") == (on_hand + 3, 0)

    again = await _reconcile(queue_runtime, store)
    assert _drift_counts(again) == NO_DRIFT

    # Where Rappit is the stock master, the channel should follow Rappit: the difference is
    # reported on every run and Rappit's figure is left alone.
    async with unit_of_work(database.sessionmaker) as session:
        (await session.scalars(select(ChannelLocation))).one().stock_master = "rappit"
    store.control(
        "POST",
        "inventory_levels",
        inventory_item_id=int(store.items["TS-00003"]),
        location_id=int(store.location_id),
        available=1,
    )
    for _ in range(2):
        run = await _reconcile(queue_runtime, store)
        assert _drift_counts(run) == {**NO_DRIFT, "stock_differing": 1}
        [entry] = run.drift["stock"]
        assert (entry["stock_master"], entry["rappit_available"], entry["channel_available"]) == (
            "rappit",
            on_hand + 3,
            1,
        )
        assert (entry["difference"], entry["healed"]) == (1 - (on_hand + 3), False)
    assert await _level(database, "TS-00003") == (on_hand + 3, 0)


async def test_only_the_window_is_reread_and_a_crash_resumes_without_counting_twice(
    queue_runtime: Runtime,
    database: TestDatabase,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two days ago (its stock left alone, so only the order tells).
    _move_clock(store.sandbox, -2 * DAY)
    try:
        old = store.place_order("TB-00001", 1, adjust_inventory=False)
    finally:
        _move_clock(store.sandbox, 2 * DAY)
    recent = store.place_order("BP-00002", 1)

    original = ShopifyClient.get
    failures = {"left": 1}

    async def flaky_get(self: ShopifyClient, path: str, params: Any = None) -> Any:
        if path == "inventory_levels.json" and failures["left"]:
            failures["left"] -= 1
            raise httpx.ReadError("connection reset by peer")
        return await original(self, path, params)

    monkeypatch.setattr(ShopifyClient, "get", flaky_get)
    # Started without a window (as `rappit sync SHOP reconcile` does): the configured one.
    monkeypatch.setenv("RAPPIT_RECONCILE_WINDOW_HOURS", "30")
    async with unit_of_work(queue_runtime.sessionmaker) as session:
        run, _ = await start_run(
            session,
            store.channel.organization_id,
            store.channel.id,
            SyncResource.RECONCILE,
            send_job=False,
        )
    handler = run_handler(queue_runtime.sessionmaker, sync_pullers(queue_runtime))
    with pytest.raises(httpx.ReadError):
        await handler(_job(run, attempt=1))
    async with database.sessionmaker() as session:
        halfway = await session.get_one(SyncRun, run.id)
        assert (halfway.status, halfway.cursor["orders_done"]) == ("PENDING", True)
        assert halfway.cursor["window_hours"] == 30
        assert halfway.counts["orders_missing"] == 1

    await handler(_job(run, attempt=2))
    async with database.sessionmaker() as session:
        done = await session.get_one(SyncRun, run.id)
        external_ids = (await session.scalars(select(Order.external_order_id))).all()
    assert done.status == "COMPLETED"
    assert done.counts["orders_checked"] == 1
    assert _drift_counts(done) == {**NO_DRIFT, "orders_missing": 1, "orders_healed": 1}
    assert [e["external_order_id"] for e in done.drift["orders"]] == [str(recent["id"])]
    assert done.counts["stock_checked"] == 3
    assert done.problems == [store.unmapped_problem]
    # The order outside the window is not re-read.
    assert list(external_ids) == [str(recent["id"])]
    assert str(old["id"]) not in external_ids


async def test_the_drift_endpoint_shows_the_latest_reconciliation_to_its_organisation(
    queue_runtime: Runtime,
    database: TestDatabase,
    store: Store,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    settings = queue_runtime.settings.model_copy(update={"reconcile_window_hours": 6})
    runtime = dataclasses.replace(queue_runtime, settings=settings)
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as api:
        url = f"/api/v1/channels/{store.channel.id}/drift"
        empty = await api.get(url, headers=tenant.headers)
        assert empty.status_code == 200
        assert empty.json() == {
            "channel_id": str(store.channel.id),
            "run_id": None,
            "reconciled_at": None,
            "started_at": None,
            "window_hours": None,
            "window_start": None,
            "counts": {},
            "drift": {},
            "problems": [],
        }

        store.place_order("TB-00001", 1)
        handler = run_handler(runtime.sessionmaker, sync_pullers(runtime))
        run_ids = []
        for _ in range(2):
            started = await api.post(
                f"/api/v1/channels/{store.channel.id}/sync",
                json={"resource": "reconcile"},
                headers=tenant.headers,
            )
            assert started.status_code == 202
            async with database.sessionmaker() as session:
                run = await session.get_one(SyncRun, uuid.UUID(started.json()["id"]))
            assert run.cursor == {"window_hours": 6}
            await handler(_job(run))
            run_ids.append(str(run.id))
            shown = await api.get(url, headers=tenant.headers)
            assert shown.status_code == 200
            body = shown.json()
            assert body["run_id"] == str(run.id)
            if len(run_ids) == 1:
                first = body
        async with database.sessionmaker() as session:
            last = await session.get_one(SyncRun, uuid.UUID(run_ids[-1]))
        assert last.finished_at is not None
        assert last.started_at is not None

        assert first["counts"]["orders_missing"] == 1
        assert first["counts"]["orders_healed"] == 1
        assert [e["drift"] for e in first["drift"]["orders"]] == ["missing"]
        assert body == {
            "channel_id": str(store.channel.id),
            "run_id": run_ids[-1],
            "reconciled_at": body["reconciled_at"],
            "started_at": body["started_at"],
            "window_hours": 6,
            "window_start": body["window_start"],
            "counts": {
                "orders_checked": 1,
                "orders_missing": 0,
                "orders_stale": 0,
                "orders_healed": 0,
                "fulfillments_healed": 0,
                "stock_checked": 3,
                "stock_differing": 0,
                "stock_healed": 0,
                "unmapped_locations": 1,
            },
            "drift": {"orders": [], "fulfillments": [], "stock": []},
            "problems": [store.unmapped_problem],
        }
        assert datetime.fromisoformat(body["reconciled_at"]) == last.finished_at
        assert datetime.fromisoformat(body["started_at"]) == last.started_at
        window_start = datetime.fromisoformat(body["window_start"])
        assert window_start == datetime.fromisoformat(last.cursor["since"])
        # Six hours before the moment the run began reading (set by the run, not the test).
        assert last.started_at <= window_start + timedelta(hours=6) <= last.finished_at

        hidden = await api.get(url, headers=other_tenant.headers)
        assert hidden.status_code == 404
        missing = await api.get(f"/api/v1/channels/{uuid.uuid4()}/drift", headers=tenant.headers)
        assert missing.status_code == 404
