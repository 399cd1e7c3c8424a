"""The chaos run: no delivery lost, duplicated or oversold while processes crash.

    .venv/bin/python bench/chaos.py [--orders 2000] [--versions 5] [--workers 2]
                                    [--redis-down-s 30]

On a scratch PostgreSQL database (created and dropped here) and a private redis-server (AOF on,
a free loopback port, so it can be stopped without touching anything else), runs Rappit as it
runs in production: ``rappit api``, ``--workers`` ``rappit worker`` processes and ``rappit
scheduler``, each a process of its own. Then sends ``--orders`` times ``--versions`` signed
deliveries (per order: ``orders/create``, edits as ``orders/updated``, a quarter of the orders
ending in ``orders/cancelled``), 30 % of them two or three times and 20 % held back behind a
newer version of their order, retrying anything not answered 200 (as Shopify does). While
they arrive, one worker is killed with SIGKILL and started again (at 25 % sent), and Redis is
stopped for ``--redis-down-s`` seconds and started again (at 40 % sent).

Afterwards (tests/support/chaos.py): every acknowledged delivery is one event and none is left
ENQUEUED, PROCESSING or FAILED; every order is in the state of its newest ``updated_at``; the
open reservations are exactly what those states hold and agree with the stock levels; the
ledger replays to the stock levels. The peak resident memory of the API and worker processes
is sampled every 0.2 s (target ≤ 250 MB each). Results go to docs/benchmarks.md. There is no
baseline to divide by here: the result is pass or fail, with the counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/queue.py would shadow the
# standard library's ``queue`` module: it goes last instead.
_HERE = str(Path(__file__).resolve().parent)
if sys.path and str(Path(sys.path[0] or ".").resolve()) == _HERE:
    del sys.path[0]
sys.path.append(_HERE)
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import os
import platform
import secrets
import signal
import tempfile
import time
from dataclasses import dataclass, field

import benchkit
from rich.console import Console
from services import (
    ROOT,
    Service,
    add_postgres_argument,
    free_port,
    rappit_command,
    rappit_env,
    rss_bytes,
    scratch_database,
    start_service,
    stop_services,
    wait_for_http,
    wait_for_text,
)

from rappit import __version__
from rappit.kit.db import create_engine
from rappit.kit.migrations import upgrade
from tests.support.chaos import Verdict, plan_deliveries, send_all, verify, wait_until_processed
from tests.support.services import ThrowawayRedis
from tests.support.webhook_fixture import build_fixture

SHOP = "bench-chaos.myshopify.com"
RSS_TARGET_MB = 250
DOCS = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- bench/chaos.py: start -->"
END_MARK = "<!-- bench/chaos.py: end -->"

console = Console()


@dataclass
class Memory:
    """Peak resident memory per role, over every process that held the role."""

    peak: dict[str, int] = field(default_factory=dict)

    def sample(self, roles: dict[str, list[int]]) -> None:
        for role, pids in roles.items():
            for pid in pids:
                self.peak[role] = max(self.peak.get(role, 0), rss_bytes(pid))


@dataclass
class Outcome:
    verdict: Verdict
    timeline: list[tuple[float, str]]
    memory: Memory
    seconds_sending: float
    seconds_total: float


async def run(arguments: argparse.Namespace, dsn: str, url: str, work: Path) -> Outcome:
    secret_key = secrets.token_urlsafe(48)
    webhook_secret = "shpss_" + secrets.token_hex(16)
    console.print("Migrating and writing the fixture …")
    await asyncio.to_thread(upgrade, url)
    fixture = await build_fixture(url, secret_key, webhook_secret, arguments.skus, SHOP)
    plan = plan_deliveries(
        fixture, webhook_secret, orders=arguments.orders, versions=arguments.versions, seed=11
    )
    console.print(
        f"Plan: {plan.distinct:,} deliveries for {len(plan.expected):,} orders, "
        f"{len(plan.sends):,} sends ({plan.repeated:,} deliveries more than once, "
        f"{plan.late:,} sent after a newer version of their order)"
    )

    redis_dir = work / "redis"
    redis_dir.mkdir()
    redis_server = ThrowawayRedis(redis_dir).start(appendonly=True)
    logs = work / "logs"
    logs.mkdir()
    port = free_port()
    env = {
        **rappit_env(dsn, redis_server.url, secret_key, work / "data"),
        # Recovery within the run rather than after production's minute.
        "RAPPIT_SWEEP_INTERVAL_S": "5",
        "RAPPIT_SWEEP_AFTER_S": "15",
        "RAPPIT_JOB_LOCK_DURATION_MS": "10000",
        "RAPPIT_JOB_STALLED_INTERVAL_MS": "5000",
    }
    services: list[Service] = []
    timeline: list[tuple[float, str]] = []
    memory = Memory()
    started = time.monotonic()

    def note(text: str) -> None:
        timeline.append((time.monotonic() - started, text))
        console.print(f"  [{time.monotonic() - started:6.1f} s] {text}")

    def worker(name: str) -> Service:
        service = start_service(
            name,
            [*rappit_command(), "worker", "--concurrency", str(arguments.concurrency)],
            env,
            logs,
        )
        services.append(service)
        return service

    engine = create_engine(url)
    try:
        api = start_service(
            "api",
            [*rappit_command(), "api", "--host", "127.0.0.1", "--port", str(port)],
            env,
            logs,
        )
        services.append(api)
        services.append(start_service("scheduler", [*rappit_command(), "scheduler"], env, logs))
        workers = [worker(f"worker-{index}") for index in range(arguments.workers)]
        await wait_for_http(api, port)
        for service in workers:
            await wait_for_text(service, "worker started")
        note(f"API, scheduler and {len(workers)} workers started")

        kill_at = int(len(plan.sends) * 0.25)
        stop_at = int(len(plan.sends) * 0.4)
        reached = {"kill": asyncio.Event(), "stop": asyncio.Event()}

        def on_progress(sent: int) -> None:
            if sent >= kill_at:
                reached["kill"].set()
            if sent >= stop_at:
                reached["stop"].set()

        async def sample_memory() -> None:
            while True:
                memory.sample({"API": [api.pid], "workers": [w.pid for w in workers]})
                await asyncio.sleep(0.2)

        async def disturb() -> None:
            await reached["kill"].wait()
            victim = workers[0]
            victim.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.process.wait)
            note(f"{victim.name} killed (SIGKILL) with jobs in flight")
            replacement = worker(f"{victim.name}-restarted")
            workers[0] = replacement
            await wait_for_text(replacement, "worker started")
            note(f"{replacement.name} started")
            await reached["stop"].wait()
            await asyncio.to_thread(redis_server.stop)
            note(f"Redis stopped for {arguments.redis_down_s:g} s")
            await asyncio.sleep(arguments.redis_down_s)
            await asyncio.to_thread(redis_server.start, appendonly=True)
            note("Redis started again (same AOF)")

        sampler = asyncio.create_task(sample_memory())
        disturbing = asyncio.create_task(disturb())
        note(f"sending {len(plan.sends):,} deliveries with {arguments.connections} connections")
        stats = await send_all(
            f"http://127.0.0.1:{port}",
            plan,
            webhook_secret,
            SHOP,
            concurrency=arguments.connections,
            on_progress=on_progress,
        )
        seconds_sending = time.monotonic() - started
        note(f"every delivery acknowledged ({stats.retries:,} retries)")
        await disturbing
        await wait_until_processed(engine, plan.distinct, timeout_s=arguments.timeout)
        note("every event processed")
        sampler.cancel()
        verdict = await verify(engine, plan, stats)
        return Outcome(verdict, timeline, memory, seconds_sending, time.monotonic() - started)
    finally:
        await asyncio.to_thread(stop_services, services)
        await engine.dispose()
        redis_server.stop()


def render_markdown(arguments: argparse.Namespace, outcome: Outcome) -> str:
    mb = {role: value / 1024 / 1024 for role, value in outcome.memory.peak.items()}
    rss_met = all(value <= RSS_TARGET_MB for value in mb.values())
    problems = "; ".join(outcome.verdict.problems)
    checks = "all passed" if outcome.verdict.ok else f"FAILED: {problems}"
    lines = [
        START_MARK,
        f"## Chaos: crashes and an outage during {outcome.verdict.counts['distinct deliveries']:,} "
        "deliveries (`bench/chaos.py`)",
        "",
        "Command: `.venv/bin/python bench/chaos.py"
        + "".join(
            f" --{name.replace('_', '-')} {value}"
            for name, value in vars(arguments).items()
            if name in ("orders", "versions", "workers", "redis_down_s")
        )
        + "`",
        "",
        f"Machine: {benchkit.cpu_model()}, {os.cpu_count()} CPUs, {benchkit.memory()}; "
        f"Python {platform.python_version()}, Rappit {__version__}; PostgreSQL and a private "
        "redis-server (AOF) on the same machine.",
        "",
        "What happened, in order:",
        "",
        *(f"- {seconds:.1f} s: {text}" for seconds, text in outcome.timeline),
        "",
        "| count | value |",
        "|---|---:|",
        *(f"| {name} | {value:,} |" for name, value in outcome.verdict.counts.items()),
        "",
        f"- Checks (every acknowledged delivery one processed event, none stuck; every order in "
        f"its newest state; reservations = order states = stock levels; ledger replays): "
        f"**{checks}**.",
        "- Peak memory (RSS): "
        + ", ".join(f"{role} {value:.0f} MB" for role, value in sorted(mb.items()))
        + f" (target ≤ {RSS_TARGET_MB} MB each): {'met' if rss_met else '**NOT met**'}.",
        f"- All deliveries acknowledged after {outcome.seconds_sending:.0f} s, all processed "
        f"after {outcome.seconds_total:.0f} s.",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


async def main(arguments: argparse.Namespace) -> None:
    name = f"rappit_bench_chaos_{os.getpid()}"
    async with scratch_database(arguments.postgres_url, name) as (dsn, url):
        with tempfile.TemporaryDirectory(prefix="rappit-bench-chaos-") as directory:
            outcome = await run(arguments, dsn, url, Path(directory))
    for label, value in outcome.verdict.counts.items():
        console.print(f"  {label}: {value:,}")
    for role, value in sorted(outcome.memory.peak.items()):
        console.print(f"  peak RSS {role}: {value / 1024 / 1024:.0f} MB")
    if outcome.verdict.problems:
        console.print("[red]FAILED:[/red] " + "; ".join(outcome.verdict.problems))
    else:
        console.print("[green]every check passed[/green]")
    benchkit.write_section(render_markdown(arguments, outcome), DOCS, START_MARK, END_MARK)
    console.print(f"Written to {DOCS}")
    if outcome.verdict.problems:
        raise SystemExit(1)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_postgres_argument(parser)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=5, help="deliveries per order")
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs at once per worker")
    parser.add_argument("--connections", type=int, default=32, help="concurrent senders")
    parser.add_argument("--redis-down-s", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="for processing to finish")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_arguments()))
