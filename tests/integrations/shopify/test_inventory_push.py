"""Pushing Rappit's stock to a simulated Shopify store over real HTTP (the sandbox): many
changes coalesced into few ``inventorySetQuantities`` calls, echoing webhooks recognised, a
change made in Shopify meanwhile (stale compare) re-read and overcome, locations the channel
masters left alone, a crash after Shopify applied a batch, and the whole path through a worker.

Each test gets a shop of its own: location A maps to a warehouse Rappit masters, location B to
one the channel masters. Every SKU starts at 50 units in both places, in Rappit and in Shopify.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from rappit.channels.service import credentials_of
from rappit.config import Environment, Settings
from rappit.integrations.shopify.client import ShopifyClient, is_mutation
from rappit.integrations.shopify.inventory_push import ShopifyInventoryTarget, ShopifyStaleCompare
from rappit.inventory.push import InventoryTarget, InventoryTargets, push_handler
from rappit.inventory.service import InventoryService
from rappit.inventory.tasks import PUSH_JOB
from rappit.kit.crypto import SecretBox
from rappit.kit.db import create_sessionmaker, unit_of_work
from rappit.kit.ids import uuid7
from rappit.kit.ratelimit import SharedLeakyBucket
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelType,
    InventoryMovement,
    InventoryPushMark,
    MovementReason,
    Product,
    PushedInventoryLevel,
    Sku,
    StockLevel,
    StockMaster,
    Warehouse,
    WebhookEvent,
)
from rappit.queues.client import QueueClient
from rappit.queues.enqueue import SESSION_QUEUE_KEY
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext
from rappit.runtime import Runtime
from rappit.sandbox.shopify import state as sandbox_models
from rappit.sandbox.shopify.server import SandboxServer
from rappit.sandbox.shopify.state import SandboxState
from rappit.wiring import Background, inventory_targets
from tests.conftest import Tenant, TestDatabase, make_tenant
from tests.integrations.shopify.test_webhook_processing import process_pending
from tests.support.factories import TEST_SECRET_KEY, assert_ledger_replays
from tests.support.waiting import wait_until

STARTING_UNITS = 50
# Deliveries fail here at once and stay recorded with their signed body, for the test to post.
DEAD_ADDRESS = "http://127.0.0.1:9/webhooks/shopify/inventory_levels/update"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(webhook_retry_delays=(), delete_failing_subscriptions=False)
    with SandboxServer(state) as server:
        yield server


@dataclass
class Store:
    sandbox: SandboxServer
    domain: str
    channel: Channel
    location_a: str  # Rappit is the stock master
    location_b: str  # the channel is the stock master
    warehouse_a: uuid.UUID
    warehouse_b: uuid.UUID
    # SKU code -> (Rappit SKU id, Shopify inventory item id), in code order
    skus: dict[str, tuple[uuid.UUID, str]]

    @property
    def shop(self) -> sandbox_models.Shop:
        return self.sandbox.state.shops[self.domain]

    def shopify_available(self, code: str, location: str) -> int:
        item = self.skus[code][1]
        return self.shop.levels[(int(item), int(location))].available

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{self.sandbox.base_url}/_sandbox/shops/{self.domain}/{path}", **kwargs
        )
        response.raise_for_status()
        return response.json()

    def requests(self) -> dict[str, Any]:
        """What Rappit asked of the shop: GraphQL calls by root field, userErrors codes."""
        log = self.control("GET", "requests", params={"recent": 0})
        return {"operations": log["operations"], "user_errors": log["user_errors"]}

    def forget_requests(self) -> None:
        self.control("DELETE", "requests")

    def change_in_shopify(self, code: str, location: str, available: int) -> None:
        """A change made in Shopify itself (a merchant in the admin, a POS sale)."""
        self.control(
            "POST",
            "inventory_levels",
            json={
                "inventory_item_id": int(self.skus[code][1]),
                "location_id": int(location),
                "available": available,
            },
        )

    def echo_deliveries(self) -> list[sandbox_models.Delivery]:
        return [d for d in self.shop.deliveries if d.topic == "inventory_levels/update"]


def _stock_the_shop(state: SandboxState, domain: str, count: int) -> list[tuple[str, int]]:
    """``count`` products of one variant each, stocked at both locations (runs on the
    sandbox's loop)."""
    shop = state.shops[domain]
    now = state.now()
    made = []
    for index in range(count):
        product_id = state.ids.next("product")
        variant = sandbox_models.Variant(
            id=state.ids.next("variant"),
            product_id=product_id,
            title="Default Title",
            sku=f"PUSH-{index:04d}",
            price_cents=1000,
            position=1,
            inventory_item_id=state.ids.next("inventory_item"),
            grams=100,
            option1="Default Title",
            created_at=now,
            updated_at=now,
        )
        shop.add_product(
            sandbox_models.Product(
                id=product_id,
                title=f"Push {index}",
                handle=f"push-{index}",
                vendor="Rappit",
                product_type="Test",
                tags="",
                created_at=now,
                updated_at=now,
                variants=[variant],
                option_name=None,
            )
        )
        for location_id in sorted(shop.locations):
            shop.add_level(
                sandbox_models.InventoryLevel(
                    variant.inventory_item_id, location_id, STARTING_UNITS, now
                )
            )
        made.append((str(variant.sku), variant.inventory_item_id))
    return made


async def make_store(
    database: TestDatabase, tenant: Tenant, sandbox: SandboxServer, *, skus: int
) -> Store:
    domain = f"push-{uuid.uuid4().hex[:10]}.myshopify.com"
    shop = sandbox.call(lambda: sandbox.state.create_shop(domain, locations=2))
    made = sandbox.call(lambda: _stock_the_shop(sandbox.state, domain, skus))
    location_a, location_b = (str(location) for location in sorted(shop.locations))
    async with httpx.AsyncClient() as http:
        subscribed = await http.post(
            f"{sandbox.shop_url(domain)}/admin/api/2026-10/webhooks.json",
            headers={"X-Shopify-Access-Token": shop.access_token},
            json={"webhook": {"topic": "inventory_levels/update", "address": DEAD_ADDRESS}},
        )
        subscribed.raise_for_status()

    org = tenant.organization_id
    codes: dict[str, tuple[uuid.UUID, str]] = {}
    async with unit_of_work(database.sessionmaker) as session:
        channel = Channel(
            organization_id=org,
            type=ChannelType.SHOPIFY,
            name="Push shop",
            shop_domain=domain,
            api_version="2026-10",
            api_base_url=sandbox.shop_url(domain),
            credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
                {"access_token": shop.access_token, "webhook_secret": shop.webhook_secret}
            ),
            settings={},
            sync_cursors={},
        )
        warehouse_a, warehouse_b = uuid7(), uuid7()
        session.add_all(
            [
                channel,
                Warehouse(id=warehouse_a, organization_id=org, code="A", name="A"),
                Warehouse(id=warehouse_b, organization_id=org, code="B", name="B"),
            ]
        )
        await session.flush()
        # Written straight in bulk (stock, ledger, listings), so a test of 300 SKUs starts in
        # a moment; the mappings come last, so setting up marks nothing.
        products, skus_rows, rows = [], [], []
        for code, item_id in made:
            product = Product(id=uuid7(), organization_id=org, title=code)
            sku = Sku(id=uuid7(), organization_id=org, product_id=product.id, code=code)
            products.append(product)
            skus_rows.append(sku)
            for warehouse in (warehouse_a, warehouse_b):
                rows.append(
                    StockLevel(
                        organization_id=org,
                        sku_id=sku.id,
                        warehouse_id=warehouse,
                        on_hand=STARTING_UNITS,
                        reserved=0,
                    )
                )
                rows.append(
                    InventoryMovement(
                        organization_id=org,
                        sku_id=sku.id,
                        warehouse_id=warehouse,
                        on_hand_delta=STARTING_UNITS,
                        reserved_delta=0,
                        reason=MovementReason.ADJUSTMENT,
                    )
                )
            rows.append(
                ChannelListing(
                    organization_id=org,
                    channel_id=channel.id,
                    sku_id=sku.id,
                    external_variant_id=f"variant-of-{item_id}",
                    external_inventory_item_id=str(item_id),
                )
            )
            codes[code] = (sku.id, str(item_id))
        for batch in (products, skus_rows, rows):
            session.add_all(batch)
            await session.flush()
        session.add_all(
            [
                ChannelLocation(
                    organization_id=org,
                    channel_id=channel.id,
                    external_location_id=location_a,
                    warehouse_id=warehouse_a,
                    stock_master=StockMaster.RAPPIT,
                ),
                ChannelLocation(
                    organization_id=org,
                    channel_id=channel.id,
                    external_location_id=location_b,
                    warehouse_id=warehouse_b,
                    stock_master=StockMaster.CHANNEL,
                ),
            ]
        )
    return Store(sandbox, domain, channel, location_a, location_b, warehouse_a, warehouse_b, codes)


@pytest.fixture
async def store(database: TestDatabase, tenant: Tenant, sandbox: SandboxServer) -> Store:
    return await make_store(database, tenant, sandbox, skus=4)


async def change(
    runtime: Runtime, store: Store, changes: list[tuple[str, int]], *, warehouse: str = "A"
) -> None:
    """Stock changes in Rappit, one transaction: (SKU code, delta) at warehouse A or B."""
    warehouse_id = store.warehouse_a if warehouse == "A" else store.warehouse_b
    async with unit_of_work(runtime.sessionmaker) as session:
        inventory = InventoryService(session, store.channel.organization_id)
        for code, delta in changes:
            await inventory.adjust(
                sku_id=store.skus[code][0], warehouse_id=warehouse_id, delta=delta, note="test"
            )


async def rappit_available(
    database: TestDatabase, store: Store, warehouse: str = "A"
) -> dict[str, int]:
    warehouse_id = store.warehouse_a if warehouse == "A" else store.warehouse_b
    async with database.sessionmaker() as session:
        rows = await session.execute(
            select(Sku.code, StockLevel.on_hand - StockLevel.reserved)
            .join(Sku, Sku.id == StockLevel.sku_id)
            .where(StockLevel.warehouse_id == warehouse_id)
        )
        return {code: int(available) for code, available in rows}


async def marks(database: TestDatabase) -> list[InventoryPushMark]:
    async with database.sessionmaker() as session:
        return list((await session.scalars(select(InventoryPushMark))).all())


async def push(
    runtime: Runtime,
    store: Store,
    *,
    job_id: str | None = None,
    attempt: int = 1,
    targets: InventoryTargets | None = None,
) -> dict[str, int]:
    """Run a channel's push job as a worker would."""
    handler = push_handler(runtime.sessionmaker, targets or inventory_targets(runtime))
    result = await handler(
        JobContext(
            QueueName.CHANNEL_SYNC,
            PUSH_JOB,
            job_id or f"inventory-push.{store.channel.id}.{uuid.uuid4().hex[:8]}",
            {
                "organization_id": str(store.channel.organization_id),
                "channel_id": str(store.channel.id),
            },
            attempt,
            3,
        )
    )
    assert isinstance(result, dict)
    return result


def targets_with(runtime: Runtime, make: Any) -> InventoryTargets:
    """Shopify targets built by ``make(client)`` around the channel's real client."""
    assert runtime.queue is not None
    limiter = SharedLeakyBucket(
        runtime.queue.redis, key_prefix=f"{runtime.settings.queue_prefix}:ratelimit"
    )

    @asynccontextmanager
    async def open_target(channel: Channel) -> AsyncIterator[InventoryTarget]:
        credentials = credentials_of(channel, runtime.secret_box)
        async with make(channel, credentials, limiter) as target:
            yield target

    targets = InventoryTargets()
    targets.register(ChannelType.SHOPIFY.value, open_target)
    return targets


async def deliver_echoes(
    webhook_client: httpx.AsyncClient, database: TestDatabase, store: Store
) -> list[WebhookEvent]:
    """Post the sandbox's signed ``inventory_levels/update`` deliveries (as Shopify sent them)
    to Rappit, and process them."""
    for delivery in store.echo_deliveries():
        response = await webhook_client.post(
            "/webhooks/shopify/inventory_levels/update",
            content=delivery.body,
            headers=delivery.headers,
        )
        assert response.status_code == 200, response.text
    return [e for e in await process_pending(database) if e.topic == "inventory_levels/update"]


# --- coalescing ---------------------------------------------------------------------------------


async def test_a_thousand_changes_on_300_skus_reach_shopify_in_two_calls(
    queue_runtime: Runtime,
    database: TestDatabase,
    tenant: Tenant,
    sandbox: SandboxServer,
    queue_client: QueueClient,
) -> None:
    store = await make_store(database, tenant, sandbox, skus=300)
    codes = list(store.skus)
    # 1,000 changes in 10 transactions: every SKU goes down 3 or 4 units, some also at B.
    for start in range(0, 1000, 100):
        await change(
            queue_runtime, store, [(codes[i % 300], -1) for i in range(start, start + 100)]
        )
    await change(queue_runtime, store, [(code, 5) for code in codes[:20]], warehouse="B")

    # Only a new mark asks for a job: the first three transactions touched every SKU for the
    # first time, the other seven found their marks waiting.
    jobs = await queue_client.queue(QueueName.CHANNEL_SYNC).getJobs(["delayed", "waiting"])
    assert {job.name for job in jobs} == {PUSH_JOB}
    assert 1 <= len(jobs) <= 3
    assert all(job.id.startswith(f"inventory-push.{store.channel.id}.") for job in jobs)
    assert len(await marks(database)) == 300

    result = await push(queue_runtime, store, job_id=jobs[0].id)

    # Nothing was known of Shopify's figures yet: they are read first (100 levels per read,
    # per batch of 250), then set in ceil(300 / 250) = 2 calls.
    assert store.requests() == {
        "operations": {"nodes": 4, "inventorySetQuantities": 2},
        "user_errors": {},
    }
    assert (result["claimed"], result["pushed"], result["cleared"], result["calls"]) == (
        300,
        300,
        300,
        6,
    )
    available = await rappit_available(database, store)
    assert sorted(set(available.values())) == [46, 47]
    assert {code: store.shopify_available(code, store.location_a) for code in codes} == available
    # Location B is the channel's to master: never pushed, whatever Rappit holds there.
    assert {store.shopify_available(code, store.location_b) for code in codes} == {STARTING_UNITS}
    assert await marks(database) == []
    async with database.sessionmaker() as session:
        pushed = (await session.scalars(select(PushedInventoryLevel))).all()
    assert {(p.external_inventory_item_id, p.last_pushed, p.channel_quantity) for p in pushed} == {
        (store.skus[code][1], available[code], available[code]) for code in codes
    }

    # A second job finds nothing to do and calls nothing.
    store.forget_requests()
    assert await push(queue_runtime, store) == {}
    assert store.requests()["operations"] == {}


async def test_levels_known_from_an_earlier_push_are_compared_without_reading(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    await change(queue_runtime, store, [(code, -2) for code in store.skus])
    await push(queue_runtime, store)
    store.forget_requests()

    await change(queue_runtime, store, [("PUSH-0000", -1), ("PUSH-0001", +3), ("PUSH-0002", -1)])
    # Back where it was: the channel shows that figure already, nothing to send.
    await change(queue_runtime, store, [("PUSH-0002", +1)])
    result = await push(queue_runtime, store)

    assert store.requests() == {"operations": {"inventorySetQuantities": 1}, "user_errors": {}}
    assert (result["pushed"], result["unchanged"]) == (2, 1)
    assert [store.shopify_available(code, store.location_a) for code in store.skus] == [
        47,
        51,
        48,
        48,
    ]


# --- echoes and the channel's own changes -------------------------------------------------------


async def test_the_echoing_webhooks_change_nothing(
    queue_runtime: Runtime,
    database: TestDatabase,
    store: Store,
    webhook_client: httpx.AsyncClient,
) -> None:
    await change(queue_runtime, store, [(code, -3) for code in store.skus])
    await push(queue_runtime, store)
    assert len(store.echo_deliveries()) == 4
    async with database.sessionmaker() as session:
        movements = await session.scalar(select(func.count()).select_from(InventoryMovement))
    before = await rappit_available(database, store), await rappit_available(database, store, "B")

    events = await deliver_echoes(webhook_client, database, store)

    assert [(e.status, e.error) for e in events] == [
        ("SKIPPED", "echo of Rappit's push: available 47 is the figure it pushed")
    ] * 4
    after = await rappit_available(database, store), await rappit_available(database, store, "B")
    assert after == before
    async with database.sessionmaker() as session:
        assert (
            await session.scalar(select(func.count()).select_from(InventoryMovement)) == movements
        )
        await assert_ledger_replays(session, store.channel.organization_id)
    assert await marks(database) == []


async def test_a_sale_in_shopify_is_remembered_and_the_next_push_compares_with_it(
    queue_runtime: Runtime,
    database: TestDatabase,
    store: Store,
    webhook_client: httpx.AsyncClient,
) -> None:
    await change(queue_runtime, store, [("PUSH-0000", -10)])
    await push(queue_runtime, store)  # Shopify: 40, known to Rappit
    store.shop.deliveries.clear()
    # Shopify sells one itself (its available drops at once); its webhook arrives first.
    store.change_in_shopify("PUSH-0000", store.location_a, 39)
    [event] = await deliver_echoes(webhook_client, database, store)
    assert (event.status, event.error) == (
        "COMPLETED",
        "recorded: Rappit is the stock master for this location",
    )
    assert (await rappit_available(database, store))["PUSH-0000"] == 40  # not applied

    # Rappit reserves the unit for the order: its available becomes Shopify's figure.
    await change(queue_runtime, store, [("PUSH-0000", -1)])
    store.forget_requests()
    result = await push(queue_runtime, store)

    assert (result["unchanged"], store.requests()["operations"]) == (1, {})
    assert store.shopify_available("PUSH-0000", store.location_a) == 39


# --- stale compare ------------------------------------------------------------------------------


class RacingClient(ShopifyClient):
    """Before each of the first ``races`` inventory mutations, the level changes in Shopify:
    between Rappit's read and its push."""

    def __init__(self, *args: Any, race: Any, races: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.race = race
        self.races = races

    async def graphql(self, query: str, variables: Any = None, **kwargs: Any) -> dict[str, Any]:
        if is_mutation(query) and self.races > 0:
            self.races -= 1
            self.race()
        return await super().graphql(query, variables, **kwargs)


def racing_targets(runtime: Runtime, store: Store, *, races: int) -> InventoryTargets:
    counter = iter(range(100, 200))

    def race() -> None:
        store.change_in_shopify("PUSH-0001", store.location_a, next(counter))

    @asynccontextmanager
    async def make(channel: Channel, credentials: Any, limiter: Any) -> AsyncIterator[Any]:
        client = RacingClient(
            str(channel.api_base_url),
            credentials.access_token,
            limiter,
            shop=channel.shop_domain,
            race=race,
            races=races,
        )
        async with client:
            yield ShopifyInventoryTarget(client)

    return targets_with(runtime, make)


async def test_a_change_in_shopify_during_the_push_is_read_again_and_overcome(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    await change(queue_runtime, store, [(code, -1) for code in store.skus])
    await push(queue_runtime, store)  # every level known: 49
    store.forget_requests()

    await change(queue_runtime, store, [("PUSH-0000", -4), ("PUSH-0001", -4)])
    result = await push(queue_runtime, store, targets=racing_targets(queue_runtime, store, races=1))

    # The first call compared PUSH-0001 against 49 while Shopify held 100: refused whole; the
    # level was read again and the call repeated with 100 as the compare value.
    assert store.requests() == {
        "operations": {"inventorySetQuantities": 2, "nodes": 1},
        "user_errors": {"CHANGE_FROM_QUANTITY_STALE": 1},
    }
    assert (result["pushed"], result["stale"], result["calls"]) == (2, 1, 3)
    assert [store.shopify_available(code, store.location_a) for code in store.skus] == [
        45,
        45,
        49,
        49,
    ]
    assert await marks(database) == []


async def test_a_level_that_keeps_changing_fails_the_job_which_converges_on_retry(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    await change(queue_runtime, store, [("PUSH-0001", -7)])
    job_id = f"inventory-push.{store.channel.id}.1"

    with pytest.raises(ShopifyStaleCompare):
        await push(
            queue_runtime,
            store,
            job_id=job_id,
            targets=racing_targets(queue_runtime, store, races=10),
        )

    # Four calls, each refused as stale (the first after reading the unknown level), then the
    # job gave up; its claim stays for its retry.
    assert store.requests() == {
        "operations": {"nodes": 4, "inventorySetQuantities": 4},
        "user_errors": {"CHANGE_FROM_QUANTITY_STALE": 4},
    }
    [mark] = await marks(database)
    assert mark.claimed_by == job_id
    store.forget_requests()

    result = await push(queue_runtime, store, job_id=job_id, attempt=2)

    assert (result["pushed"], result["stale"]) == (1, 0)
    assert store.shopify_available("PUSH-0001", store.location_a) == 43
    assert await marks(database) == []


# --- stock masters ------------------------------------------------------------------------------


async def test_locations_the_channel_masters_are_never_pushed(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    await change(queue_runtime, store, [(code, 7) for code in store.skus], warehouse="B")
    assert await marks(database) == []

    # Marked while Rappit mastered location A, which the channel masters by the time the
    # job runs: dropped, not pushed.
    await change(queue_runtime, store, [("PUSH-0000", -5)])
    async with unit_of_work(database.sessionmaker) as session:
        await session.execute(
            update(ChannelLocation)
            .where(ChannelLocation.external_location_id == store.location_a)
            .values(stock_master=StockMaster.CHANNEL)
        )
    result = await push(queue_runtime, store)

    assert (result["channel_master"], result.get("pushed", 0)) == (1, 0)
    assert store.requests()["operations"] == {}
    assert {store.shopify_available(code, loc) for code in store.skus
            for loc in (store.location_a, store.location_b)} == {STARTING_UNITS}  # fmt: skip
    assert await marks(database) == []


# --- a stock transaction holding a mark while the push settles (PostgreSQL row locks) ----------


class HeldPush:
    """Tells when it has the levels in hand, then waits for the test's word before pushing."""

    def __init__(self, real: ShopifyInventoryTarget) -> None:
        self.real = real
        self.batch_size = real.batch_size
        self.pushing = asyncio.Event()
        self.go = asyncio.Event()

    async def push(self, levels: Any, *, reference: str, operation_id: str) -> Any:
        self.pushing.set()
        await self.go.wait()
        return await self.real.push(levels, reference=reference, operation_id=operation_id)


async def _lock_waiters(database: TestDatabase) -> int:
    async with database.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


async def test_a_mark_a_stock_transaction_holds_is_not_waited_for_and_still_pushed(
    postgres_database: TestDatabase,
    sandbox: SandboxServer,
    queue_client: QueueClient,
    redis_url: str,
    tmp_path: Path,
) -> None:
    database = postgres_database
    settings = Settings(
        env=Environment.TEST,
        data_dir=tmp_path,
        database_url=database.url,
        redis_url=redis_url,
        queue_prefix=queue_client.prefix,
        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
    )
    runtime = Runtime(
        settings=settings,
        engine=database.engine,
        sessionmaker=create_sessionmaker(database.engine, info={SESSION_QUEUE_KEY: queue_client}),
        secret_box=SecretBox(TEST_SECRET_KEY),
        queue=queue_client,
    )
    store = await make_store(database, await make_tenant(database, "Acme"), sandbox, skus=2)
    await change(runtime, store, [("PUSH-0000", -1), ("PUSH-0001", -1)])
    await push(runtime, store)  # both known: 49
    await change(runtime, store, [("PUSH-0000", -3)])  # due: 46
    held: list[HeldPush] = []

    @asynccontextmanager
    async def make(channel: Channel, credentials: Any, limiter: Any) -> AsyncIterator[Any]:
        async with ShopifyClient.for_channel(channel, credentials, limiter) as client:
            held.append(HeldPush(ShopifyInventoryTarget(client)))
            yield held[0]

    job = asyncio.create_task(push(runtime, store, targets=targets_with(runtime, make)))
    await wait_until(lambda: bool(held) and held[0].pushing.is_set(), message="the push")
    # An order reserves two more units while the push has 46 in hand: the stock transaction
    # holds the claimed mark (bumping its version) and stays open.
    async with runtime.sessionmaker() as stock_session:
        await InventoryService(stock_session, store.channel.organization_id).adjust(
            sku_id=store.skus["PUSH-0000"][0], warehouse_id=store.warehouse_a, delta=-2
        )
        held[0].go.set()
        # The push sets 46, skips the held mark when it settles, finds nothing else to claim,
        # and waits for that one mark alone (holding nothing the stock transaction needs).
        await wait_until(lambda: _lock_waiters(database), message="the push waiting")
        assert not job.done()
        assert store.shopify_available("PUSH-0000", store.location_a) == 46
        await stock_session.commit()

    result = await asyncio.wait_for(job, timeout=30)

    assert (result["rounds"], result["pushed"]) == (2, 2)
    assert store.shopify_available("PUSH-0000", store.location_a) == 44
    assert await marks(database) == []


# --- crash after the call -----------------------------------------------------------------------


class CrashAfterPush:
    """Shopify applies the batch, then the worker dies before the answer is recorded."""

    def __init__(self, real: ShopifyInventoryTarget) -> None:
        self.real = real
        self.batch_size = real.batch_size

    async def push(self, levels: Any, *, reference: str, operation_id: str) -> Any:
        await self.real.push(levels, reference=reference, operation_id=operation_id)
        raise ConnectionResetError("the worker died with Shopify's answer in flight")


async def test_a_crash_after_shopify_applied_a_batch_is_not_applied_twice(
    queue_runtime: Runtime, database: TestDatabase, store: Store
) -> None:
    await change(queue_runtime, store, [(code, -1) for code in store.skus])
    await push(queue_runtime, store)  # every level known: 49
    store.shop.deliveries.clear()
    store.forget_requests()
    await change(queue_runtime, store, [("PUSH-0002", -9), ("PUSH-0003", 4)])
    job_id = f"inventory-push.{store.channel.id}.2"

    @asynccontextmanager
    async def make(channel: Channel, credentials: Any, limiter: Any) -> AsyncIterator[Any]:
        async with ShopifyClient.for_channel(channel, credentials, limiter) as client:
            yield CrashAfterPush(ShopifyInventoryTarget(client))

    with pytest.raises(ConnectionResetError):
        await push(queue_runtime, store, job_id=job_id, targets=targets_with(queue_runtime, make))
    assert len(store.echo_deliveries()) == 2  # applied in Shopify, not recorded in Rappit
    keys = set(store.shop.idempotency)

    result = await push(queue_runtime, store, job_id=job_id, attempt=2)

    # The retry sent the same input under the same key: Shopify answered from its record.
    assert store.requests()["operations"] == {"inventorySetQuantities": 2}
    assert set(store.shop.idempotency) == keys
    assert len(store.echo_deliveries()) == 2
    assert result["pushed"] == 2
    assert [store.shopify_available(code, store.location_a) for code in store.skus] == [
        49,
        49,
        40,
        53,
    ]
    assert await marks(database) == []


# --- through a worker ---------------------------------------------------------------------------


async def test_a_change_through_the_api_reaches_shopify_through_a_worker(
    queue_runtime: Runtime,
    database: TestDatabase,
    store: Store,
    api_for_shop: httpx.AsyncClient,
) -> None:
    background = Background(queue_runtime, queues=[QueueName.CHANNEL_SYNC], run_scheduler=False)
    background.start()
    try:
        for sku, delta in (("PUSH-0000", -5), ("PUSH-0003", 12), ("PUSH-0000", -1)):
            response = await api_for_shop.post(
                "/api/v1/inventory/adjustments",
                json={"sku": sku, "warehouse": "A", "delta": delta, "reason": "count"},
            )
            assert response.status_code == 201, response.text
        await wait_until(
            lambda: (
                store.shopify_available("PUSH-0000", store.location_a) == 44
                and store.shopify_available("PUSH-0003", store.location_a) == 62
            ),
            timeout=30,
            message="the levels pushed by a worker",
        )
        await wait_until(lambda: _no_marks(database), timeout=30, message="the marks settled")
    finally:
        assert await background.stop() is True
    assert store.requests()["user_errors"] == {}


async def _no_marks(database: TestDatabase) -> bool:
    return await marks(database) == []
