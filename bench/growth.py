"""Webhook ingest with a large inbox: p99 with 1,000,000 rows already in ``webhook_events``
against an empty table, in the same run.

    .venv/bin/python bench/growth.py [--rows 1000000] [--seconds 15] [--connections 64]

Uses bench/ingest.py's ingest measurement (``rappit api`` under wrk, every answer checked
against the rows and the jobs): once on the empty table of a scratch database, then again
after ``--rows`` older, processed events (``COMPLETED``, small payloads) were copied into the
table and it was analysed. The target: p99 within ±20 % of the empty-table run. The rows are
spread over 1,000 channels of other organisations, as in a deployment serving many.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if sys.path and str(Path(sys.path[0] or ".").resolve()) == _HERE:
    del sys.path[0]
sys.path.append(_HERE)
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import benchkit
import ingest
from rich.console import Console
from services import (
    ROOT,
    add_postgres_argument,
    rappit_env,
    require_loopback,
    scratch_database,
    stop_services,
)

from rappit import __version__
from rappit.kit.ids import uuid7
from rappit.kit.migrations import upgrade
from tests.support.webhook_fixture import build_fixture, order_payload

P99_TOLERANCE = 0.2
COPY_CHUNK = 50_000
DOCS = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- bench/growth.py: start -->"
END_MARK = "<!-- bench/growth.py: end -->"

console = Console()


async def prefill(dsn: str, rows: int) -> float:
    """``rows`` processed events of 1,000 other channels (own organisations), copied in."""
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        now = datetime.now(UTC)
        organizations = [uuid.uuid4() for _ in range(1000)]
        channels = [uuid.uuid4() for _ in range(1000)]
        await connection.copy_records_to_table(
            "organizations",
            records=[(org, f"Other {n}", now, now) for n, org in enumerate(organizations)],
            columns=["id", "name", "created_at", "updated_at"],
        )
        await connection.copy_records_to_table(
            "channels",
            records=[
                (
                    channel,
                    org,
                    "shopify",
                    f"Shop {n}",
                    f"other-{n}.myshopify.com",
                    "2026-10",
                    "active",
                    "-",
                    "{}",
                    "{}",
                    now,
                    now,
                )
                for n, (channel, org) in enumerate(zip(channels, organizations, strict=True))
            ],
            columns=[
                "id",
                "organization_id",
                "type",
                "name",
                "shop_domain",
                "api_version",
                "status",
                "credentials_encrypted",
                "settings",
                "sync_cursors",
                "created_at",
                "updated_at",
            ],
        )
        rng = random.Random(5)
        for start in range(0, rows, COPY_CHUNK):
            records = []
            for n in range(start, min(start + COPY_CHUNK, rows)):
                owner = rng.randrange(1000)
                stamp = now - timedelta(seconds=rows - n)
                records.append(
                    (
                        uuid7(),
                        organizations[owner],
                        "shopify",
                        channels[owner],
                        "orders/updated",
                        f"old-{n}",
                        f"e-{n}",
                        stamp,
                        "2026-10",
                        "COMPLETED",
                        json.dumps({"id": 1_000_000 + n, "updated_at": stamp.isoformat()}),
                        str(1_000_000 + n),
                        1,
                        stamp,
                        stamp,
                        stamp,
                    )
                )
            await connection.copy_records_to_table(
                "webhook_events",
                records=records,
                columns=[
                    "id",
                    "organization_id",
                    "source",
                    "channel_id",
                    "topic",
                    "external_event_id",
                    "event_id",
                    "triggered_at",
                    "api_version",
                    "status",
                    "payload",
                    "resource_id",
                    "attempts",
                    "processed_at",
                    "created_at",
                    "updated_at",
                ],
            )
            console.print(f"  {min(start + COPY_CHUNK, rows):,} rows", end="\r")
        await connection.execute("VACUUM ANALYZE webhook_events")
    finally:
        await connection.close()
    return time.perf_counter() - started


def render_markdown(
    arguments: argparse.Namespace, empty: ingest.Load, full: ingest.Load, rows: int
) -> str:
    ratio = full.p99_ms / empty.p99_ms
    met = abs(ratio - 1) <= P99_TOLERANCE
    lines = [
        START_MARK,
        "## Webhook ingest with 1,000,000 events stored (`bench/growth.py`)",
        "",
        f"Command: `.venv/bin/python bench/growth.py --rows {arguments.rows} --seconds "
        f"{arguments.seconds:g} --connections {arguments.connections}`",
        "",
        f"Machine: {benchkit.cpu_model()}, {os.cpu_count()} CPUs, {benchkit.memory()}; "
        f"Python {platform.python_version()}, Rappit {__version__}.",
        "",
        "bench/ingest.py's ingest measurement (`rappit api`, PostgreSQL, Redis, wrk with "
        f"{arguments.connections} connections for {arguments.seconds:g} s after a warm-up; "
        "every answer checked against the rows and jobs), first on an empty `webhook_events` "
        f"table, then with {rows:,} older processed events of 1,000 other shops copied in "
        "(small payloads: the unique key and the indexes are what grow) and the table "
        "analysed.",
        "",
        "| table | requests/s | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        f"| empty | {empty.per_second:,.0f} | {empty.p50_ms:.1f} | {empty.p99_ms:.1f} | "
        f"{empty.max_ms:.0f} |",
        f"| {rows:,} rows | {full.per_second:,.0f} | {full.p50_ms:.1f} | {full.p99_ms:.1f} | "
        f"{full.max_ms:.0f} |",
        "",
        f"- p99 with {rows:,} rows / p99 empty = {ratio:.2f} (target within "
        f"±{P99_TOLERANCE:.0%}): {'met' if met else '**NOT met**'}. Throughput ratio "
        f"{full.per_second / empty.per_second:.2f}.",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


async def main(arguments: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    require_loopback(arguments.postgres_url, "--postgres-url")
    require_loopback(arguments.redis_url, "--redis-url")
    name = f"rappit_bench_growth_{os.getpid()}"
    run_prefix = f"rappit-bench-growth-{os.getpid()}"
    async with scratch_database(arguments.postgres_url, name) as (dsn, url):
        empty, full = await measure(arguments, dsn, url, run_prefix)
    section = render_markdown(arguments, empty, full, arguments.rows)
    console.print(section)
    benchkit.write_section(section, DOCS, START_MARK, END_MARK)
    console.print(f"Written to {DOCS}")


async def measure(
    arguments: argparse.Namespace, dsn: str, url: str, run_prefix: str
) -> tuple[ingest.Load, ingest.Load]:
    secret_key = secrets.token_urlsafe(48)
    webhook_secret = "shpss_" + secrets.token_hex(16)
    context: ingest.Context | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="rappit-bench-growth-") as directory:
            work = Path(directory)
            console.print("Scratch database: migrating and writing the fixture …")
            await asyncio.to_thread(upgrade, url)
            # The shop wrk's script signs for (bench/ingest.py's).
            fixture = await build_fixture(url, secret_key, webhook_secret, 200, ingest.SHOP)
            rng = random.Random(7)
            data = work / "ingest.tsv"
            ingest.write_deliveries(
                data,
                [
                    order_payload(ingest.INGEST_ORDER_BASE + i, 1000 + i, fixture, rng)
                    for i in range(ingest.INGEST_BODIES)
                ],
                webhook_secret,
                "unused",
            )
            script = work / "deliveries.lua"
            script.write_text(ingest.LUA_SCRIPT)
            logs = work / "logs"
            logs.mkdir()
            env = rappit_env(dsn, arguments.redis_url, secret_key, work / "data")
            context = ingest.Context(arguments, dsn, env, logs, run_prefix, script, 0)

            console.print(f"Ingest, empty table: {arguments.seconds:g} s …")
            _, empty = await ingest.ingest_side(context, "rappit", data)
            console.print(f"  {empty.per_second:,.0f} requests/s, p99 {empty.p99_ms:.1f} ms")
            benchkit.delete_keys(arguments.redis_url, f"{run_prefix}-*")

            console.print(f"Copying {arguments.rows:,} older events into the table …")
            seconds = await prefill(dsn, arguments.rows)
            console.print(f"  done in {seconds:.0f} s (with VACUUM ANALYZE)")

            console.print(f"Ingest, {arguments.rows:,} rows: {arguments.seconds:g} s …")
            # Webhook ids of their own: the first run's are in the table.
            _, full = await ingest.ingest_side(context, "rappit", data, tag="full")
            console.print(f"  {full.per_second:,.0f} requests/s, p99 {full.p99_ms:.1f} ms")
    finally:
        if context is not None and context.services:
            await asyncio.to_thread(stop_services, list(context.services))
        benchkit.delete_keys(arguments.redis_url, f"{run_prefix}-*")
    return empty, full


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_postgres_argument(parser)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pool-size", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_arguments()))
