"""Pushing changed stock levels to Shopify: Rappit's coalesced inventory push against one API
call per level, in the same run.

    .venv/bin/python bench/push.py [--sizes 10,1000,10000] [--rest-up-to 1000]
                                   [--plan plus] [--products 7000]

Starts the Shopify sandbox in a process of its own (``python -m rappit.sandbox.shopify``,
reached over loopback HTTP) with three shops generated alike (same seed), one per way of
pushing, so each starts with a rate-limit bucket of its own, on the same plan (``--plan``,
default Shopify Plus: 1,000 GraphQL points and 20 REST requests per second). For every N in
``--sizes``, the first N levels of each shop's primary location go up by one unit:

- *Rappit*: N stock adjustments in Rappit (``InventoryService.adjust``, transactions of 500,
  not timed) mark N levels; then the push job runs as a worker runs it (``push_handler`` with
  the registered Shopify target): claim, plan, ``inventorySetQuantities`` in batches of 250
  with compare values and idempotency keys, record, settle. The levels were known from an
  earlier sync, the steady state: nothing is read first.
- *one GraphQL call per level*: ``inventorySetQuantities`` with one quantity per call (its
  compare value and an idempotency key), sequentially, through the same ``ShopifyClient`` and
  shared rate limiter Rappit uses.
- *one REST call per level*: ``POST inventory_levels/set.json`` per level (the legacy way, no
  compare), the same client; only up to ``--rest-up-to`` levels (at 20 requests per second
  10,000 levels take over 8 minutes; the time is worked out from the plan instead).

Each cell starts from an empty sandbox bucket, a fresh limiter and an empty request log; the
clock runs from the first call to the last answer. Afterwards the sandbox's request log gives
the calls and throttled answers, and every pushed level must show its new figure in the shop.
The results are printed and written into docs/benchmarks.md between this script's markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/queue.py would shadow the
# standard library's ``queue`` module (redis-py imports it): it goes last instead, where
# ``import benchkit`` still finds the shared helpers.
_HERE = str(Path(__file__).resolve().parent)
if sys.path and str(Path(sys.path[0] or ".").resolve()) == _HERE:
    del sys.path[0]
sys.path.append(_HERE)

import argparse
import asyncio
import math
import os
import platform
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import benchkit
import httpx
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table
from services import add_postgres_argument, require_loopback, scratch_database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit import __version__
from rappit.integrations.shopify import inventory_push as shopify_inventory_push
from rappit.integrations.shopify.client import ShopifyClient
from rappit.integrations.shopify.inventory_push import (
    SET_QUANTITIES,
    item_gid,
    location_gid,
)
from rappit.inventory.push import InventoryTargets, push_handler
from rappit.inventory.push_repository import record_levels
from rappit.inventory.service import InventoryService
from rappit.inventory.tasks import PUSH_JOB
from rappit.kit.crypto import SecretBox
from rappit.kit.db import create_engine, create_sessionmaker, unit_of_work
from rappit.kit.ids import uuid7
from rappit.kit.migrations import upgrade
from rappit.kit.ratelimit import SharedLeakyBucket
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelType,
    InventoryMovement,
    MovementReason,
    Product,
    Sku,
    StockLevel,
    StockMaster,
    Warehouse,
)
from rappit.organizations.service import create_organization
from rappit.queues.connection import connection_kwargs
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext
from rappit.sandbox.shopify.server import SandboxProcess
from rappit.sandbox.shopify.state import PLANS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- bench/push.py: start -->"
END_MARK = "<!-- bench/push.py: end -->"
API_VERSION = "2026-10"
BATCH = 250
MUTATION_POINTS = 10  # Shopify's cost of a mutation (reference/channel-apis.md §2.2)
CHANGES_PER_TRANSACTION = 500
WAYS = {
    "rappit": "Rappit (coalesced)",
    "graphql": "one GraphQL call per level",
    "rest": "one REST call per level",
}
SHOPS = {way: f"push-{way}.myshopify.com" for way in WAYS}
COLUMNS = ["levels", "way", "API calls", "throttled", "wall s", "levels/s", "time ÷ Rappit's"]

console = Console()

Level = tuple[str, str]  # (inventory item id, location id)


@dataclass
class Cell:
    size: int
    way: str
    calls: int
    throttled: int
    seconds: float
    operations: dict[str, int]

    @property
    def per_second(self) -> float:
        return self.size / self.seconds if self.seconds else float("inf")


class Sandbox:
    """The sandbox's control API and each shop's Admin API, for setting up and checking."""

    def __init__(self, process: SandboxProcess) -> None:
        self.base_url = process.base_url
        self.shops = {shop["domain"]: shop for shop in process.shops}
        self.http = httpx.Client(timeout=120, trust_env=False)

    def control(self, method: str, domain: str, path: str) -> Any:
        response = self.http.request(method, f"{self.base_url}/_sandbox/shops/{domain}/{path}")
        response.raise_for_status()
        return response.json()

    def fresh(self, domain: str) -> None:
        """Empty bucket, empty request log."""
        self.control("POST", domain, "limits/reset")
        self.control("DELETE", domain, "requests")

    def primary_levels(self, domain: str) -> tuple[str, dict[str, int]]:
        """The shop's first location and the available of every item stocked there."""
        shop = self.shops[domain]
        headers = {"X-Shopify-Access-Token": shop["access_token"]}
        api = f"{shop['api_base_url']}/admin/api/{API_VERSION}"
        locations = self.http.get(f"{api}/locations.json", headers=headers).json()["locations"]
        location = str(min(int(location["id"]) for location in locations))
        levels: dict[str, int] = {}
        url: str | None = f"{api}/inventory_levels.json?location_ids={location}&limit=250"
        while url:
            page = self.http.get(url, headers=headers)
            page.raise_for_status()
            for level in page.json()["inventory_levels"]:
                levels[str(level["inventory_item_id"])] = int(level["available"])
            url = page.links.get("next", {}).get("url")
        return location, levels


def client_for(sandbox: Sandbox, domain: str, redis: aioredis.Redis, prefix: str) -> ShopifyClient:
    shop = sandbox.shops[domain]
    limiter = SharedLeakyBucket(redis, key_prefix=f"{prefix}:ratelimit")
    return ShopifyClient(
        shop["api_base_url"], shop["access_token"], limiter, api_version=API_VERSION, shop=domain
    )


# --- Rappit's side ------------------------------------------------------------------------------


@dataclass
class Fixture:
    organization_id: uuid.UUID
    channel: Channel
    warehouse_id: uuid.UUID
    sku_ids: list[uuid.UUID]  # in the order of the shop's items


async def build_fixture(
    sessionmaker: async_sessionmaker[AsyncSession],
    secret_key: str,
    sandbox: Sandbox,
    location: str,
    items: list[tuple[str, int]],
) -> Fixture:
    """An organisation whose warehouse stands for the Rappit shop's primary location (Rappit is
    the stock master), one listed SKU per item with Shopify's figure as its stock, and those
    figures known as the channel's (as after a sync)."""
    domain = SHOPS["rappit"]
    shop = sandbox.shops[domain]
    async with unit_of_work(sessionmaker) as session:
        organization, _ = await create_organization(session, "Bench push")
        org = organization.id
        channel = Channel(
            organization_id=org,
            type=ChannelType.SHOPIFY,
            name="Bench push",
            shop_domain=domain,
            api_version=API_VERSION,
            api_base_url=shop["api_base_url"],
            credentials_encrypted=SecretBox(secret_key).encrypt_json(
                {"access_token": shop["access_token"], "webhook_secret": "shpss_bench"}
            ),
            settings={},
            sync_cursors={},
        )
        warehouse = Warehouse(id=uuid7(), organization_id=org, code="MAIN", name="Main")
        session.add_all([channel, warehouse])
        await session.flush()
        products, skus, rows = [], [], []
        for item_id, available in items:
            product = Product(id=uuid7(), organization_id=org, title=f"Item {item_id}")
            sku = Sku(id=uuid7(), organization_id=org, product_id=product.id, code=item_id)
            products.append(product)
            skus.append(sku)
            rows += [
                StockLevel(
                    organization_id=org,
                    sku_id=sku.id,
                    warehouse_id=warehouse.id,
                    on_hand=available,
                    reserved=0,
                ),
                InventoryMovement(
                    organization_id=org,
                    sku_id=sku.id,
                    warehouse_id=warehouse.id,
                    on_hand_delta=available,
                    reserved_delta=0,
                    reason=MovementReason.ADJUSTMENT,
                    note="bench stock",
                ),
                ChannelListing(
                    organization_id=org,
                    channel_id=channel.id,
                    sku_id=sku.id,
                    external_variant_id=f"variant-of-{item_id}",
                    external_inventory_item_id=item_id,
                ),
            ]
        for batch in (products, skus, rows):
            session.add_all(batch)
            await session.flush()
        session.add(
            ChannelLocation(
                organization_id=org,
                channel_id=channel.id,
                external_location_id=location,
                warehouse_id=warehouse.id,
                stock_master=StockMaster.RAPPIT,
            )
        )
        await record_levels(
            session,
            org,
            channel.id,
            pushed={},
            seen={(item_id, location): available for item_id, available in items},
        )
    return Fixture(org, channel, warehouse.id, [sku.id for sku in skus])


async def change_in_rappit(
    sessionmaker: async_sessionmaker[AsyncSession], fixture: Fixture, sku_ids: list[uuid.UUID]
) -> None:
    """These SKUs go up one unit each, as stock adjustments do: each marks its level for the
    push."""
    for start in range(0, len(sku_ids), CHANGES_PER_TRANSACTION):
        async with unit_of_work(sessionmaker) as session:
            inventory = InventoryService(session, fixture.organization_id)
            for sku_id in sku_ids[start : start + CHANGES_PER_TRANSACTION]:
                await inventory.adjust(
                    sku_id=sku_id, warehouse_id=fixture.warehouse_id, delta=1, note="bench"
                )


async def push_with_rappit(
    sessionmaker: async_sessionmaker[AsyncSession],
    secret_key: str,
    redis: aioredis.Redis,
    prefix: str,
    fixture: Fixture,
) -> tuple[float, dict[str, int]]:
    """The push job, timed as a worker runs it."""
    targets = InventoryTargets()
    shopify_inventory_push.register(targets, SecretBox(secret_key), redis, prefix)
    handler = push_handler(sessionmaker, targets)
    context = JobContext(
        QueueName.CHANNEL_SYNC,
        PUSH_JOB,
        f"inventory-push.{fixture.channel.id}.{uuid.uuid4().hex[:8]}",
        {"organization_id": str(fixture.organization_id), "channel_id": str(fixture.channel.id)},
        1,
        5,
    )
    started = time.perf_counter()
    result = await handler(context)
    seconds = time.perf_counter() - started
    assert isinstance(result, dict)
    return seconds, result


# --- one call per level -------------------------------------------------------------------------


async def push_per_level(
    client: ShopifyClient, way: str, location: str, levels: list[tuple[str, int]]
) -> float:
    """Each level set to its figure + 1 with a call of its own, one after the other."""
    started = time.perf_counter()
    for item_id, current in levels:
        if way == "graphql":
            mutation_input = {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": "rappit://bench/per-level",
                "quantities": [
                    {
                        "inventoryItemId": item_gid(item_id),
                        "locationId": location_gid(location),
                        "quantity": current + 1,
                        "changeFromQuantity": current,
                    }
                ],
            }
            data = await client.graphql(
                SET_QUANTITIES, {"input": mutation_input, "key": str(uuid.uuid4())}, idempotent=True
            )
            errors = data["inventorySetQuantities"]["userErrors"]
            if errors:
                raise SystemExit(f"inventorySetQuantities refused item {item_id}: {errors}")
        else:
            await client.post(
                "inventory_levels/set.json",
                {
                    "location_id": int(location),
                    "inventory_item_id": int(item_id),
                    "available": current + 1,
                },
            )
    return time.perf_counter() - started


# --- running and reporting ----------------------------------------------------------------------


def snapshot(sandbox: Sandbox, domain: str, size: int, way: str, seconds: float) -> Cell:
    log = sandbox.control("GET", domain, "requests?recent=0")
    return Cell(size, way, log["requests"], log["throttled"], seconds, dict(log["operations"]))


def check(sandbox: Sandbox, domain: str, expected: dict[str, int]) -> None:
    sandbox.control("POST", domain, "limits/reset")  # the check is not part of the cell
    _, levels = sandbox.primary_levels(domain)
    wrong = [item for item, value in expected.items() if levels.get(item) != value]
    if wrong:
        raise SystemExit(f"{len(wrong)} level(s) of {domain} do not show the pushed figure")


def _cells(cell: Cell, rappit: Cell) -> list[str]:
    return [
        f"{cell.size:,}",
        WAYS[cell.way],
        f"{cell.calls:,}",
        str(cell.throttled),
        f"{cell.seconds:.2f}",
        f"{cell.per_second:,.0f}",
        "1" if cell.way == "rappit" else f"{cell.seconds / rappit.seconds:,.1f}",
    ]


def _command() -> str:
    return " ".join([".venv/bin/python bench/push.py", *sys.argv[1:]])


def render_markdown(
    cells: list[Cell], machine: list[tuple[str, str]], arguments: argparse.Namespace
) -> str:
    rappit = {cell.size: cell for cell in cells if cell.way == "rappit"}
    plan = PLANS[arguments.plan]
    standard = PLANS["standard"]
    largest = max(arguments.sizes)
    batches = math.ceil(largest / BATCH)
    per_level_points = largest * MUTATION_POINTS
    comparisons = []
    for size in arguments.sizes:
        for cell in cells:
            if cell.size == size and cell.way != "rappit":
                comparisons.append(
                    f"- {size:,} levels: Rappit made {rappit[size].calls:,} call(s) in "
                    f"{rappit[size].seconds:.2f} s; {WAYS[cell.way]} made {cell.calls:,} in "
                    f"{cell.seconds:.2f} s ({cell.calls / rappit[size].calls:,.0f} times the "
                    f"calls, {cell.seconds / rappit[size].seconds:,.1f} times the time)."
                )
    met = all(
        cell.operations == {"inventorySetQuantities": math.ceil(cell.size / BATCH)}
        and cell.calls == math.ceil(cell.size / BATCH)
        and cell.throttled == 0
        for cell in rappit.values()
    )
    lines = [
        START_MARK,
        "## Inventory push to Shopify (`bench/push.py`)",
        "",
        "N stock levels changed in Rappit are pushed to a sandbox shop, against one API call "
        "per level in the same run. Three shops are generated alike in one sandbox process, "
        f"one per way, each with a bucket of its own on the *{plan.name}* plan "
        f"({plan.graphql_restore:g} GraphQL points per second, bucket {plan.graphql_bucket:g}; "
        f"REST {plan.rest_leak:g} requests per second, bucket {plan.rest_bucket:g}), so the "
        "per-level ways are held by Shopify's limits as they would be, and every way starts "
        "from a full allowance. The first N levels of each shop's primary location go up by "
        "one unit. *Rappit*: N `InventoryService.adjust` calls (not timed) mark the levels; "
        "the push job then runs as a worker runs it: claim the marks, read Rappit's stock, "
        f"`inventorySetQuantities` in batches of {BATCH} with compare values and idempotency "
        "keys, record what was pushed, settle the marks (the levels were known from an "
        "earlier sync, so nothing is read first; the scratch database is analyzed once after "
        "the fixture is written, as autovacuum keeps a live one). *One GraphQL call per "
        "level*: "
        "`inventorySetQuantities` with one quantity, its compare value and an idempotency key "
        "per call; *one REST call per level*: `POST inventory_levels/set.json` (legacy, no "
        "compare); both sequential through the same `ShopifyClient` and shared rate limiter. "
        "Each cell starts from an empty bucket, a fresh limiter and an empty request log; "
        "*API calls* and *throttled* are the sandbox's request log; every pushed level was "
        "checked to show its new figure afterwards.",
        "",
        f"Command: `{_command()}`.",
        "",
        *[f"- {label}: {value}" for label, value in machine],
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---:|---|" + "---:|" * (len(COLUMNS) - 2),
        *["| " + " | ".join(_cells(cell, rappit[cell.size])) + " |" for cell in cells],
        "",
        *comparisons,
        "",
        "Where the time goes: one GraphQL call per level is held by the points bucket once "
        f"its {plan.graphql_bucket:g} points are spent, {MUTATION_POINTS} points a call, so "
        f"{largest:,} such calls take at least `({MUTATION_POINTS} * {largest:,} - "
        f"{plan.graphql_bucket:g}) / {plan.graphql_restore:g}` = "
        f"{max(0.0, MUTATION_POINTS * largest - plan.graphql_bucket) / plan.graphql_restore:,.0f}"
        " s on this plan; one REST call per level is held by the REST bucket the same way "
        f"(`({arguments.rest_up_to:,} - {plan.rest_bucket:g}) / {plan.rest_leak:g}` = "
        f"{max(0.0, arguments.rest_up_to - plan.rest_bucket) / plan.rest_leak:,.0f} s for "
        f"{arguments.rest_up_to:,}). Rappit's calls stay within the bucket; its time is the "
        f"calls (a {BATCH}-level mutation takes the sandbox longer than a single one) and its "
        "database work: claiming, reading and settling the marks and recording each batch, "
        "which at 10 levels costs about what the nine saved loopback calls save.",
        "",
        f"On the standard plan ({standard.graphql_restore:g} points per second, bucket "
        f"{standard.graphql_bucket:g}; REST {standard.rest_leak:g} per second, bucket "
        f"{standard.rest_bucket:g}), worked out from the limits rather than run: "
        f"{largest:,} levels one GraphQL call each cost {per_level_points:,} points, at least "
        f"{(per_level_points - standard.graphql_bucket) / standard.graphql_restore:,.0f} s; "
        f"one REST call each at least "
        f"{(largest - standard.rest_bucket) / standard.rest_leak:,.0f} s; Rappit's "
        f"{batches} calls cost {batches * MUTATION_POINTS:,} points, within the bucket, so no "
        "wait at all.",
        "",
        f"- Inventory push target: every Rappit cell in ⌈N/{BATCH}⌉ `inventorySetQuantities` "
        f"calls and nothing else, no throttled answer: {'met' if met else 'not met'}.",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Run:
    """One run's shared state: the sandbox, Rappit's database and fixture, and the figures
    each shop shows (the last level of each list is kept for warming up)."""

    arguments: argparse.Namespace
    sandbox: Sandbox
    sessionmaker: async_sessionmaker[AsyncSession]
    secret_key: str
    redis: aioredis.Redis
    prefix: str
    fixture: Fixture
    locations: dict[str, str]
    levels: dict[str, list[tuple[str, int]]]

    async def rappit(self, indexes: range, tag: str) -> tuple[float, dict[str, int]]:
        await change_in_rappit(
            self.sessionmaker, self.fixture, [self.fixture.sku_ids[i] for i in indexes]
        )
        self.sandbox.fresh(SHOPS["rappit"])
        seconds, result = await push_with_rappit(
            self.sessionmaker, self.secret_key, self.redis, f"{self.prefix}-rappit-{tag}",
            self.fixture,
        )  # fmt: skip
        return seconds, result

    async def per_level(self, way: str, indexes: range, tag: str) -> float:
        domain = SHOPS[way]
        self.sandbox.fresh(domain)
        levels = [self.levels[way][i] for i in indexes]
        async with client_for(self.sandbox, domain, self.redis, f"{self.prefix}-{way}-{tag}") as c:
            seconds = await push_per_level(c, way, self.locations[way], levels)
        return seconds

    def pushed(self, way: str, indexes: range) -> None:
        """The figures after a push: these levels one unit up, which the shop must show (read
        after the cell's request log was taken)."""
        for i in indexes:
            item, value = self.levels[way][i]
            self.levels[way][i] = (item, value + 1)
        check(self.sandbox, SHOPS[way], dict(self.levels[way][i] for i in indexes))

    async def warm_up(self) -> None:
        """One level each way first, not counted: a worker's imports, pool and statement
        cache are warm before its jobs come."""
        spare = range(len(self.fixture.sku_ids) - 1, len(self.fixture.sku_ids))
        await self.rappit(spare, "warm-up")
        self.pushed("rappit", spare)
        for way in ("graphql", "rest"):
            await self.per_level(way, spare, "warm-up")
            self.pushed(way, spare)

    async def size(self, size: int) -> list[Cell]:
        indexes = range(size)
        console.print(f"{size:,} levels: {size:,} stock changes in Rappit, then the push …")
        seconds, result = await self.rappit(indexes, str(size))
        cells = [snapshot(self.sandbox, SHOPS["rappit"], size, "rappit", seconds)]
        self.pushed("rappit", indexes)
        console.print(f"  Rappit: {result} in {seconds:.2f} s")
        for way in ("graphql", "rest"):
            if way == "rest" and size > self.arguments.rest_up_to:
                continue
            seconds = await self.per_level(way, indexes, str(size))
            cells.append(snapshot(self.sandbox, SHOPS[way], size, way, seconds))
            self.pushed(way, indexes)
            console.print(f"  {WAYS[way]}: {cells[-1].calls:,} calls in {seconds:.2f} s")
        return cells


async def run(arguments: argparse.Namespace) -> tuple[list[Cell], str]:
    largest = max(arguments.sizes)
    prefix = f"rappit-bench-push-{os.getpid()}"
    secret_key = secrets.token_urlsafe(48)
    process = SandboxProcess(
        *[part for domain in SHOPS.values() for part in ("--shop", domain)],
        "--plan", arguments.plan, "--products", str(arguments.products), "--seed", "1",
    )  # fmt: skip
    console.print(f"Sandbox: three shops of {arguments.products:,} products ({arguments.plan}) …")
    process.start(timeout=300)
    redis = aioredis.Redis(**connection_kwargs(arguments.redis_url))
    cells: list[Cell] = []
    try:
        sandbox = Sandbox(process)
        levels: dict[str, list[tuple[str, int]]] = {}
        locations: dict[str, str] = {}
        for way, domain in SHOPS.items():
            location, available = sandbox.primary_levels(domain)
            if len(available) <= largest:
                raise SystemExit(
                    f"{domain} stocks {len(available)} items at its first location, not more "
                    f"than {largest:,}: give more --products"
                )
            locations[way] = location
            levels[way] = sorted(available.items(), key=lambda pair: int(pair[0]))[: largest + 1]
        database = f"rappit_bench_push_{os.getpid()}"
        async with scratch_database(arguments.postgres_url, database) as (dsn, url):
            admin = await asyncpg.connect(dsn)
            try:
                server_version = str(await admin.fetchval("SHOW server_version"))
            finally:
                await admin.close()
            console.print("Scratch database: migrating, writing the fixture …")
            await asyncio.to_thread(upgrade, url)
            # One engine for the run, as a worker keeps one.
            engine = create_engine(url)
            try:
                sessionmaker = create_sessionmaker(engine)
                fixture = await build_fixture(
                    sessionmaker, secret_key, sandbox, locations["rappit"], levels["rappit"]
                )
                # Statistics as autovacuum keeps them on a live database (the fixture was
                # written in bulk a moment ago).
                async with engine.connect() as connection:
                    await connection.execute(text("ANALYZE"))
                    await connection.commit()
                bench = Run(
                    arguments, sandbox, sessionmaker, secret_key, redis, prefix, fixture,
                    locations, levels,
                )  # fmt: skip
                await bench.warm_up()
                for size in arguments.sizes:
                    cells += await bench.size(size)
            finally:
                await engine.dispose()
    finally:
        process.stop()
        await redis.aclose()
        deleted = benchkit.delete_keys(arguments.redis_url, f"{prefix}-*")
        console.print(f"Sandbox stopped; deleted {deleted} Redis key(s) under {prefix}-*")
    return cells, server_version


def main(arguments: argparse.Namespace) -> None:
    require_loopback(arguments.redis_url, "--redis-url")
    require_loopback(arguments.postgres_url, "--postgres-url")
    load_before = os.getloadavg()
    cells, server_version = asyncio.run(run(arguments))

    rappit = {cell.size: cell for cell in cells if cell.way == "rappit"}
    table = Table(title="Pushing N changed levels")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "way" else "right")
    for cell in cells:
        table.add_row(*_cells(cell, rappit[cell.size]))
    Console(width=max(console.width, 120)).print(table)

    machine = benchkit.machine(
        ("PostgreSQL", f"{server_version} (default configuration, same machine)"),
        (
            "software",
            f"Python {platform.python_version()}, Rappit {__version__}, the sandbox in a "
            "process of its own",
        ),
        load_before=load_before,
        load_after=True,
    )
    if arguments.docs:
        benchkit.write_section(
            render_markdown(cells, machine, arguments), DOCS, START_MARK, END_MARK
        )
        console.print(f"Written to {DOCS}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_postgres_argument(parser)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sizes", default="10,1000,10000", help="levels per cell, comma-separated")
    parser.add_argument("--rest-up-to", type=int, default=1000, help="largest REST cell")
    parser.add_argument("--plan", choices=sorted(PLANS), default="plus")
    parser.add_argument("--products", type=int, default=7000, help="products per shop")
    parser.add_argument(
        "--no-docs", dest="docs", action="store_false", help="do not update docs/benchmarks.md"
    )
    arguments = parser.parse_args()
    arguments.sizes = sorted(int(part) for part in arguments.sizes.split(",") if part)
    if not arguments.sizes or arguments.sizes[0] < 1:
        parser.error("--sizes must be positive numbers")
    return arguments


if __name__ == "__main__":
    main(parse_arguments())
