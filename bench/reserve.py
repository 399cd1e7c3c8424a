"""Stock reservations per second through Rappit, against a bare SQL baseline in the same run.

    .venv/bin/python bench/reserve.py [--postgres-url URL] [--seconds N]

Creates a scratch database on the PostgreSQL server at ``--postgres-url`` (dropped at the end),
migrates it, and measures at concurrency 1, 8 and 64:

- Rappit: one unit of work per reservation, as the order flow does it: ``lock_levels`` (row
  lock on the SKU's stock rows) and ``reserve`` (allocation, guarded UPDATE, ledger row,
  reservation row) for a one-line order, then commit; through SQLAlchemy and the engine
  settings the application uses.
- bare: ``UPDATE stock SET reserved = reserved + 1 WHERE id = $1 AND on_hand - reserved >= 1``
  on a plain table through an asyncpg pool of the same size, one autocommitted statement each.

Two workloads: 1000 SKUs picked at random (contention as in a real catalogue), and one hot SKU
that every worker reserves. The results table is printed and written into docs/benchmarks.md
between this script's markers. Numbers are only comparable within one run: the ratio is the
result.
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
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import benchkit
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit import __version__
from rappit.inventory.service import InventoryService
from rappit.kit.crypto import SecretBox
from rappit.kit.db import create_engine, create_sessionmaker, unit_of_work
from rappit.kit.migrations import upgrade
from rappit.models import (
    Channel,
    ChannelType,
    Order,
    OrderItem,
    Product,
    Reservation,
    Sku,
    StockLevel,
    Warehouse,
)
from rappit.organizations.service import create_organization

CONCURRENCY = (1, 8, 64)
SKU_COUNT = 1000
# Far more than any run can reserve, so no reservation ever comes up short.
STOCK_PER_SKU = 1_000_000_000
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START_MARK = "<!-- bench/reserve.py: start -->"
END_MARK = "<!-- bench/reserve.py: end -->"

console = Console()


@dataclass(frozen=True)
class Line:
    """One order line waiting for stock: what a reservation needs."""

    order_id: uuid.UUID
    order_item_id: uuid.UUID
    sku_id: uuid.UUID


@dataclass(frozen=True)
class Rate:
    per_second: float
    # CPU time of this (client) process per second of wall time: near 1.0 means the Python
    # side, not PostgreSQL, set the pace.
    client_cpu: float


@dataclass(frozen=True)
class Result:
    workload: str
    concurrency: int
    rappit: Rate
    bare: Rate

    @property
    def ratio(self) -> float:
        return self.rappit.per_second / self.bare.per_second


# --- fixture ---------------------------------------------------------------------------------


async def build_fixture(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[uuid.UUID, list[Line]]:
    """An organisation with one channel, one warehouse and SKU_COUNT SKUs in stock, and one
    one-line order per SKU (reservations for the same line simply add up)."""
    async with unit_of_work(sessionmaker) as session:
        organization, _ = await create_organization(session, "Bench")
        channel = Channel(
            organization_id=organization.id,
            type=ChannelType.SHOPIFY,
            name="Bench shop",
            shop_domain="bench.myshopify.com",
            credentials_encrypted=SecretBox("bench-secret-key-0123456789").encrypt_json({}),
        )
        warehouse = Warehouse(organization_id=organization.id, code="MAIN", name="Main")
        product = Product(organization_id=organization.id, title="Bench product")
        session.add_all([channel, warehouse, product])
        await session.flush()
        skus = [
            Sku(organization_id=organization.id, product_id=product.id, code=f"SKU-{index:05d}")
            for index in range(SKU_COUNT)
        ]
        orders = [
            Order(
                organization_id=organization.id,
                channel_id=channel.id,
                external_order_id=str(1000 + index),
            )
            for index in range(SKU_COUNT)
        ]
        session.add_all([*skus, *orders])
        await session.flush()
        items = [
            OrderItem(
                organization_id=organization.id,
                order_id=order.id,
                external_item_id="1",
                sku_id=sku.id,
                sku_code=sku.code,
                quantity=1,
            )
            for order, sku in zip(orders, skus, strict=True)
        ]
        session.add_all(items)
        await session.flush()
        # Stock through the service, so the ledger matches the levels as in real use.
        inventory = InventoryService(session, organization.id)
        for sku in skus:
            await inventory.adjust(
                sku_id=sku.id, warehouse_id=warehouse.id, set_to=STOCK_PER_SKU, note="bench"
            )
        lines = [
            Line(order_id=item.order_id, order_item_id=item.id, sku_id=item.sku_id)
            for item in items
            if item.sku_id is not None
        ]
    return organization.id, lines


async def reserve_once(
    sessionmaker: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, line: Line
) -> None:
    async with unit_of_work(sessionmaker) as session:
        inventory = InventoryService(session, organization_id)
        levels = await inventory.lock_levels([line.sku_id])
        reservations = await inventory.reserve(
            order_id=line.order_id,
            order_item_id=line.order_item_id,
            sku_id=line.sku_id,
            quantity=1,
            preferred_warehouse_id=None,
            locked_levels=levels,
        )
        if not reservations:
            raise RuntimeError(f"no stock for SKU {line.sku_id}: the fixture ran out")


# --- measuring -------------------------------------------------------------------------------


async def measure(
    operation: Callable[[int], Awaitable[None]],
    concurrency: int,
    seconds: float,
    warmup: float,
) -> Rate:
    """Operations per second over ``seconds`` with ``concurrency`` loops, after ``warmup``
    (connections opened, statements prepared) that is not counted."""
    completed = 0
    counting = False
    stop = False

    async def loop(worker: int) -> None:
        nonlocal completed
        while not stop:
            await operation(worker)
            if counting:
                completed += 1

    tasks = [asyncio.create_task(loop(worker)) for worker in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        counting, started, cpu_started = True, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        done, elapsed = completed, time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        stop = True
        await asyncio.gather(*tasks)
    return Rate(done / elapsed, cpu / elapsed)


async def run_rappit(
    url: str,
    organization_id: uuid.UUID,
    lines: list[Line],
    concurrency: int,
    seconds: float,
    warmup: float,
) -> Rate:
    engine = create_engine(url, pool_size=concurrency)
    sessionmaker = create_sessionmaker(engine)
    pickers = [random.Random(worker) for worker in range(concurrency)]
    try:
        return await measure(
            lambda worker: reserve_once(
                sessionmaker, organization_id, pickers[worker].choice(lines)
            ),
            concurrency,
            seconds,
            warmup,
        )
    finally:
        await engine.dispose()


async def run_bare(
    dsn: str, ids: list[int], concurrency: int, seconds: float, warmup: float
) -> Rate:
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    pickers = [random.Random(worker) for worker in range(concurrency)]

    async def reserve(worker: int) -> None:
        status = await pool.execute(
            "UPDATE stock SET reserved = reserved + 1 WHERE id = $1 AND on_hand - reserved >= 1",
            pickers[worker].choice(ids),
        )
        if status != "UPDATE 1":
            raise RuntimeError("bare stock ran out")

    try:
        return await measure(reserve, concurrency, seconds, warmup)
    finally:
        await pool.close()


# --- environment and report ------------------------------------------------------------------


def _command() -> str:
    arguments = []
    for argument in sys.argv[1:]:
        if "://" in argument:  # a URL may carry a password
            argument = make_url(argument).render_as_string(hide_password=True)
        arguments.append(argument)
    return " ".join([".venv/bin/python bench/reserve.py", *arguments])


COLUMNS = ("workload", "concurrency", "Rappit/s", "bare/s", "Rappit/bare", "client CPU")


def _cells(result: Result) -> list[str]:
    return [
        result.workload,
        str(result.concurrency),
        f"{result.rappit.per_second:,.0f}",
        f"{result.bare.per_second:,.0f}",
        f"{result.ratio:.3f}",
        f"{result.rappit.client_cpu:.0%} / {result.bare.client_cpu:.0%}",
    ]


def render_markdown(results: list[Result], machine: list[tuple[str, str]], seconds: float) -> str:
    lines = [
        START_MARK,
        "## Stock reservations (`bench/reserve.py`)",
        "",
        "Reservations per second through Rappit's `InventoryService` (one unit of work each: "
        "`lock_levels` + `reserve` for a one-line order, committed) against a bare guarded "
        "`UPDATE stock SET reserved = reserved + 1 WHERE id = $1 AND on_hand - reserved >= 1` "
        "via asyncpg, same concurrency, same PostgreSQL, same run. *many SKUs*: "
        f"{SKU_COUNT} SKUs picked at random; *one hot SKU*: every worker reserves the same SKU.",
        "",
        f"Command: `{_command()}` ({seconds:g} s measured per cell after a warm-up). "
        "*Rappit/s* and *bare/s* are committed reservations per second; *client CPU* is the "
        "benchmark process's CPU time per wall-clock second while measuring Rappit / bare "
        "(near 100 %: the single Python process, not PostgreSQL, set the pace).",
        "",
        *[f"- {label}: {value}" for label, value in machine],
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
        *["| " + " | ".join(_cells(result)) + " |" for result in results],
        "",
        "A Rappit reservation is several statements in one transaction (row lock, warehouse "
        "lookup, guarded UPDATE, ledger INSERT, reservation INSERT, COMMIT) where the baseline "
        "is one autocommitted UPDATE, so the ratio is the price of the ledger, the reservation "
        "rows and the ORM per reservation. Client and server share the machine's CPUs.",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


# --- main --------------------------------------------------------------------------------------


async def main(arguments: argparse.Namespace) -> None:
    admin_dsn = arguments.postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    load_before = os.getloadavg()  # other work on the machine skews the numbers: say so
    name = f"rappit_bench_reserve_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        server_version = await admin.fetchval("SHOW server_version")
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = make_url(admin_dsn).set(database=name)
    dsn = base.render_as_string(hide_password=False)
    url = base.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(upgrade, url)
        setup = create_engine(url)
        organization_id, lines = await build_fixture(create_sessionmaker(setup))
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(
                "CREATE TABLE stock (id int PRIMARY KEY, on_hand int NOT NULL, "
                "reserved int NOT NULL, CHECK (reserved <= on_hand))"
            )
            await connection.execute(
                "INSERT INTO stock SELECT g, $1, 0 FROM generate_series(1, $2) AS g",
                STOCK_PER_SKU,
                SKU_COUNT,
            )
            await connection.execute("ANALYZE")
        finally:
            await connection.close()

        workloads = [
            ("many SKUs", lines, list(range(1, SKU_COUNT + 1))),
            ("one hot SKU", lines[:1], [1]),
        ]
        results: list[Result] = []
        for workload, rappit_lines, bare_ids in workloads:
            for concurrency in CONCURRENCY:
                console.print(f"{workload}, concurrency {concurrency} …")
                rappit = await run_rappit(
                    url,
                    organization_id,
                    rappit_lines,
                    concurrency,
                    arguments.seconds,
                    arguments.warmup,
                )
                bare = await run_bare(
                    dsn, bare_ids, concurrency, arguments.seconds, arguments.warmup
                )
                results.append(Result(workload, concurrency, rappit, bare))

        # The stock rows and the reservation rows must agree: a lost or doubled update under
        # concurrency would show here.
        async with setup.connect() as check:
            reserved = await check.scalar(select(func.sum(StockLevel.reserved)))
            held = await check.scalar(select(func.sum(Reservation.quantity)))
        await setup.dispose()
        if reserved != held:
            raise RuntimeError(f"stock says {reserved} reserved, reservations say {held}")
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    table = Table(title=f"Reservations per second ({arguments.seconds:g} s per cell)")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "workload" else "right")
    for result in results:
        table.add_row(*_cells(result))
    console.print(table)

    machine = benchkit.machine(
        ("PostgreSQL", f"{server_version} (default configuration, same machine)"),
        ("Python", f"{platform.python_version()}, asyncio event loop, Rappit {__version__}"),
        load_before=load_before,
    )
    if arguments.docs:
        benchkit.write_section(
            render_markdown(results, machine, arguments.seconds), DOCS, START_MARK, END_MARK
        )
        console.print(f"Written to {DOCS}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server and a database to connect to while creating the scratch database",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted time per cell")
    parser.add_argument(
        "--no-docs", dest="docs", action="store_false", help="do not update docs/benchmarks.md"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_arguments()))
