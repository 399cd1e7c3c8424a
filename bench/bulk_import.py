"""The initial import of a large Shopify store (sync resource ``import``) on PostgreSQL, against
a baseline in the same run.

    .venv/bin/python bench/bulk_import.py [--orders 100000] [--products 400] [--profile]

Starts the Shopify sandbox in a subprocess (``python -m rappit.sandbox.shopify``, reached only
over loopback HTTP) with ``--orders`` generated orders (seeded), creates a scratch database on
the PostgreSQL server at ``--postgres-url`` (dropped at the end), migrates it and writes the
fixture: an organisation, the channel, a warehouse and one SKU with ample stock for every
variant SKU of the shop, so paid orders reserve stock as they would in production. Then it runs
the import exactly as a worker does (``run_handler`` with the registered pullers: bulk operation,
polling, streamed JSONL, pages of 250 committed with the cursor) and times its phases:

- *export*: from ``bulkOperationRunQuery`` to COMPLETED (the sandbox's work; Shopify's time in
  production, minutes for a large store);
- *import*: from the result being ready to the run COMPLETED (Rappit's work: download, parse,
  map, apply, reserve, commit);
- *baseline*: the same result file downloaded and parsed by the import's own reader (streamed,
  split into lines and parsed with ``orjson``, children put under their order), without
  mapping or writing anything; and, as a second reference, the same plus the mapping to
  ``ChannelOrder``.

Afterwards the orders table must hold every order, and the stock rows' reserved units must
equal the reservations and the ledger. The results are printed and written into
docs/benchmarks.md between this script's markers. Numbers are only comparable within one run.
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
import cProfile
import io
import ipaddress
import os
import platform
import pstats
import resource
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import benchkit
import httpx
import redis.asyncio as aioredis
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from rappit import __version__
from rappit.integrations.shopify import bulk_import, bulk_reader
from rappit.integrations.shopify import sync as shopify_sync
from rappit.integrations.shopify.graphql_orders import rest_order, shop_zone
from rappit.integrations.shopify.orders import map_order
from rappit.inventory.service import InventoryService
from rappit.kit.crypto import SecretBox
from rappit.kit.db import create_engine, create_sessionmaker, unit_of_work
from rappit.kit.migrations import upgrade
from rappit.models import (
    Channel,
    ChannelType,
    InventoryMovement,
    Order,
    OrderItem,
    Product,
    Reservation,
    Sku,
    StockLevel,
    SyncResource,
    SyncRun,
    Warehouse,
)
from rappit.organizations.service import create_organization
from rappit.queues.connection import connection_kwargs
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext
from rappit.sandbox.shopify.server import SandboxProcess
from rappit.sync.processing import run_handler
from rappit.sync.service import SyncRegistry, start_run

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START_MARK = "<!-- bench/bulk_import.py: start -->"
END_MARK = "<!-- bench/bulk_import.py: end -->"
SHOP = "bench-import.myshopify.com"
TOKEN = "shpat_bench_import"
TARGET_S = 60.0
STOCK = 10_000_000
console = Console()


@dataclass
class Report:
    orders: int
    lines: int
    file_mb: float
    export_s: float
    import_s: float
    baseline_s: float
    mapped_s: float
    wall_s: float
    statuses: dict[str, int]
    reserved_units: int
    cpu: CpuUse

    @property
    def rate(self) -> float:
        return self.orders / self.import_s

    @property
    def ratio(self) -> float:
        return self.import_s / self.baseline_s


@dataclass
class CpuUse:
    """CPU seconds spent during the run: by this process (the importing worker), by its reader
    process, by the PostgreSQL backends serving the scratch database; and the load average
    around it (other work on the machine competes for the same cores)."""

    importing_s: float = 0.0
    reader_s: float = 0.0
    postgres_s: float = 0.0
    load_during: float = 0.0


def _own_cpu() -> tuple[float, float]:
    """(this process, its ended children) in CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def _backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to ``database`` (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if command.startswith("postgres:") and f" {database} " in command:
            fields = stat[stat.rfind(")") + 2 :].split()
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def require_loopback(url: str, what: str) -> None:
    host = connection_kwargs(url)["host"] if url.startswith("redis") else make_url(url).host
    if host in (None, "", "localhost"):
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"{what} must be on this machine (a loopback address), not {host}")


async def build_fixture(url: str, secret_key: str, api_base_url: str, codes: list[str]) -> Channel:
    engine = create_engine(url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            organization, _ = await create_organization(session, "Bench")
            channel = Channel(
                organization_id=organization.id,
                type=ChannelType.SHOPIFY,
                name="Bench import",
                shop_domain=SHOP,
                api_version="2026-10",
                api_base_url=api_base_url,
                credentials_encrypted=SecretBox(secret_key).encrypt_json(
                    {"access_token": TOKEN, "webhook_secret": "shpss_bench"}
                ),
                settings={},
                sync_cursors={},
            )
            session.add(channel)
            warehouse = Warehouse(organization_id=organization.id, code="MAIN", name="Main")
            session.add(warehouse)
            await session.flush()
            inventory = InventoryService(session, organization.id)
            for code in codes:
                product = Product(organization_id=organization.id, title=code)
                session.add(product)
                await session.flush()
                sku = Sku(organization_id=organization.id, product_id=product.id, code=code)
                session.add(sku)
                await session.flush()
                await inventory.adjust(
                    sku_id=sku.id, warehouse_id=warehouse.id, delta=STOCK, note="bench stock"
                )
        return channel
    finally:
        await engine.dispose()


def shop_codes(api_base_url: str) -> list[str]:
    codes: set[str] = set()
    url: str | None = f"{api_base_url}/admin/api/2026-10/products.json?limit=250"
    with httpx.Client(headers={"X-Shopify-Access-Token": TOKEN}, timeout=60) as http:
        while url:
            page = http.get(url)
            page.raise_for_status()
            for product in page.json()["products"]:
                codes.update(v["sku"] for v in product["variants"] if v.get("sku"))
            url = page.links.get("next", {}).get("url")
    return sorted(codes)


async def run_import(
    url: str, secret_key: str, redis_url: str, prefix: str, channel: Channel, profile: bool
) -> tuple[SyncRun, float, float, str, CpuUse]:
    """Runs the import as a worker would; answers the run, the export and import seconds, the
    result URL and the CPU it took."""
    engine = create_engine(url)
    redis = aioredis.Redis(**connection_kwargs(redis_url))
    marks: dict[str, Any] = {}
    original = bulk_import._completed_operation

    async def timed(*args: Any) -> dict[str, Any]:
        operation = await original(*args)
        marks["ready"] = time.perf_counter()
        marks["url"] = operation["url"]
        return operation

    bulk_import._completed_operation = timed  # type: ignore[assignment]
    try:
        sessionmaker = create_sessionmaker(engine)
        registry = SyncRegistry()
        shopify_sync.register(registry, SecretBox(secret_key), redis, prefix)
        async with unit_of_work(sessionmaker) as session:
            run, _ = await start_run(
                session, channel.organization_id, channel.id, SyncResource.IMPORT, send_job=False
            )
        job = JobContext(
            QueueName.SHOPIFY_SYNC,
            "sync.run",
            f"sync-run.{run.id}",
            {"organization_id": str(run.organization_id), "run_id": str(run.id)},
            1,
            5,
        )
        profiler = cProfile.Profile() if profile else None
        database = make_url(url).database or ""
        own_before, backends_before = _own_cpu(), _backend_cpu(database)
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        await run_handler(sessionmaker, registry)(job)
        if profiler:
            profiler.disable()
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats(60)
            print(text.getvalue())
        finished = time.perf_counter()
        own_after, backends_after = _own_cpu(), _backend_cpu(database)
        cpu = CpuUse(
            importing_s=own_after[0] - own_before[0],
            reader_s=own_after[1] - own_before[1],
            postgres_s=sum(
                seconds - backends_before.get(pid, 0.0) for pid, seconds in backends_after.items()
            ),
            load_during=os.getloadavg()[0],
        )
        async with sessionmaker() as session:
            done = await session.get_one(SyncRun, run.id)
        return done, marks["ready"] - started, finished - marks["ready"], str(marks["url"]), cpu
    finally:
        bulk_import._completed_operation = original
        await redis.aclose()
        await engine.dispose()


async def baseline(url: str, *, mapped: bool) -> tuple[float, int, int]:
    """Download and parse the result the way the import streams it, without writing anything
    (``mapped``: and map every order to a ``ChannelOrder``). Answers seconds, orders, lines."""
    zone = shop_zone("Etc/GMT-1", 60)
    orders = lines = 0
    page: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}

    def flush() -> None:
        if mapped:
            for node, children in page.values():
                map_order(rest_order(node, children, zone))
        page.clear()

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=bulk_reader.DOWNLOAD_TIMEOUT) as http:
        # The import's own reader: streamed, split and parsed exactly as it does.
        async for batch in bulk_reader.lines(http, url, 0):
            for _, line in batch:
                lines += 1
                if "__parentId" in line:
                    parent = page.get(line["__parentId"])
                    if parent is not None:
                        parent[1].append(line)
                    continue
                if len(page) >= bulk_reader.PAGE_SIZE:
                    flush()
                page[line["id"]] = (line, [])
                orders += 1
    flush()
    return time.perf_counter() - started, orders, lines


async def verify(url: str, channel: Channel, orders: int) -> tuple[dict[str, int], int]:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            count = await session.scalar(
                select(func.count()).select_from(Order).where(Order.channel_id == channel.id)
            )
            if count != orders:
                raise SystemExit(f"the orders table holds {count} orders, not {orders}")
            grouped = await session.execute(
                select(Order.status, func.count()).group_by(Order.status)
            )
            statuses = {row[0]: row[1] for row in grouped}
            reserved = int(await session.scalar(select(func.sum(StockLevel.reserved))) or 0)
            held = int(await session.scalar(select(func.sum(Reservation.quantity))) or 0)
            ledger = int(
                await session.scalar(select(func.sum(InventoryMovement.reserved_delta))) or 0
            )
            items = await session.scalar(select(func.count()).select_from(OrderItem))
            if not reserved == held == ledger:
                raise SystemExit(f"stock {reserved}, reservations {held}, ledger {ledger}")
            console.print(f"Verified: {count} orders, {items} lines, {reserved} units reserved")
            return statuses, reserved
    finally:
        await engine.dispose()


def render_markdown(report: Report, machine: list[tuple[str, str]], args: Any) -> str:
    met = report.import_s <= TARGET_S
    rows = [
        ("download + parse (baseline)", report.baseline_s),
        ("download + parse + map to ChannelOrder", report.mapped_s),
        ("Rappit import (download … commit)", report.import_s),
    ]
    lines = [
        START_MARK,
        "## Initial import of a large Shopify store (`bench/bulk_import.py`)",
        "",
        f"{report.orders:,} generated orders ({report.lines:,} JSONL lines, "
        f"{report.file_mb:.0f} MB; seed {args.seed}, {args.products} products) imported through "
        "one GraphQL bulk operation from the Shopify sandbox (own process, loopback HTTP) into "
        "PostgreSQL, as a worker runs it: the JSONL streamed, parsed, mapped and prepared by a "
        "reader process while the worker writes pages of 250 orders, each committed with the "
        "run's cursor; SKUs resolved, paid orders reserving stock (for the units Shopify has not "
        "fulfilled yet) with ledger rows. Baseline: the same file downloaded and parsed by the "
        "import's own line reader in one process, nothing mapped or written.",
        "",
        "| step | seconds | orders/s | x baseline |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in rows:
        lines.append(
            f"| {name} | {seconds:.1f} | {report.orders / seconds:,.0f} | "
            f"{seconds / report.baseline_s:.1f} |"
        )
    lines += [
        "",
        f"- Import (from the result being ready to the run COMPLETED): **{report.import_s:.1f} s, "
        f"{report.rate:,.0f} orders/s** — target under {TARGET_S:g} s: "
        f"{'met' if met else 'NOT met'}.",
        f"- Export (bulk operation from start to COMPLETED, the sandbox's work; Shopify's in "
        f"production): {report.export_s:.1f} s. Whole run: {report.wall_s:.1f} s.",
        f"- CPU during the run: importing process {report.cpu.importing_s:.1f} s, its reader "
        f"process {report.cpu.reader_s:.1f} s, PostgreSQL (the scratch database's backends) "
        f"{report.cpu.postgres_s:.1f} s; load average {report.cpu.load_during:.2f} at the end "
        "of the run (other work on the machine shares its cores).",
        f"- Result: {', '.join(f'{k} {v:,}' for k, v in sorted(report.statuses.items()))}; "
        f"{report.reserved_units:,} units reserved (stock rows = reservations = ledger).",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in machine],
        "",
        END_MARK,
        "",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    require_loopback(args.postgres_url, "--postgres-url")
    require_loopback(args.redis_url, "--redis-url")
    load_before = os.getloadavg()
    admin_dsn = args.postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"rappit_bench_import_{os.getpid()}"
    prefix = f"rappit-bench-import-{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        server_version = await admin.fetchval("SHOW server_version")
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(admin_dsn).set(database=name, drivername="postgresql+asyncpg")
    url_text = url.render_as_string(hide_password=False)
    secret_key = secrets.token_urlsafe(48)
    sandbox = SandboxProcess(
        "--shop", SHOP, "--token", TOKEN, "--products", str(args.products),
        "--orders", str(args.orders), "--seed", str(args.seed),
    )  # fmt: skip
    try:
        console.print(f"Sandbox: generating {args.orders:,} orders …")
        sandbox.start(timeout=300)
        api_base_url = sandbox.shops[0]["api_base_url"]
        codes = await asyncio.to_thread(shop_codes, api_base_url)
        console.print(f"Scratch database {name}: migrating, {len(codes)} SKUs with stock …")
        await asyncio.to_thread(upgrade, url_text)
        channel = await build_fixture(url_text, secret_key, api_base_url, codes)
        console.print("Importing …")
        wall = time.perf_counter()
        run, export_s, import_s, result_url, cpu = await run_import(
            url_text, secret_key, args.redis_url, prefix, channel, args.profile
        )
        wall_s = time.perf_counter() - wall
        if run.status != "COMPLETED":
            raise SystemExit(f"the import ended {run.status}: {run.error}")
        statuses, reserved = await verify(url_text, channel, args.orders)
        baseline_s, orders, lines = await baseline(result_url, mapped=False)
        mapped_s, _, _ = await baseline(result_url, mapped=True)
        async with httpx.AsyncClient() as http:
            size = len((await http.get(result_url)).content) / 1e6
        report = Report(
            orders, lines, size, export_s, import_s, baseline_s, mapped_s, wall_s, statuses,
            reserved, cpu,
        )  # fmt: skip
    finally:
        sandbox.stop()
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        benchkit.delete_keys(args.redis_url, f"{prefix}:*")

    console.print(
        f"{report.orders:,} orders, {report.lines:,} lines, {report.file_mb:.0f} MB: export "
        f"{report.export_s:.1f} s; baseline {report.baseline_s:.1f} s "
        f"({report.orders / report.baseline_s:,.0f} orders/s), with mapping "
        f"{report.mapped_s:.1f} s; "
        f"import {report.import_s:.1f} s ({report.rate:,.0f} orders/s, {report.ratio:.1f}x the "
        f"baseline); target {TARGET_S:g} s: {'met' if report.import_s <= TARGET_S else 'NOT met'}; "
        f"CPU: importing {report.cpu.importing_s:.1f} s, reader {report.cpu.reader_s:.1f} s, "
        f"PostgreSQL {report.cpu.postgres_s:.1f} s; load average {report.cpu.load_during:.2f}"
    )
    machine = benchkit.machine(
        ("PostgreSQL", f"{server_version} (default configuration, same machine)"),
        ("software", f"Python {platform.python_version()}, Rappit {__version__}"),
        load_before=load_before,
    )
    if args.docs and not args.profile:
        benchkit.write_section(render_markdown(report, machine, args), DOCS, START_MARK, END_MARK)
        console.print(f"Written to {DOCS}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="server for the scratch database (loopback only)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print a profile of the import")
    parser.add_argument(
        "--no-docs", dest="docs", action="store_false", help="do not write docs/benchmarks.md"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_arguments()))
