"""The chaos run, small: the API, two workers and the scheduler as processes of their own on
PostgreSQL and a private Redis; signed deliveries of several versions per order, some sent
more than once and some out of order; a worker killed with SIGKILL and started again, and
Redis stopped and started again, while the deliveries keep coming. Afterwards every promise
is checked (tests/support/chaos.py). bench/chaos.py is the full-size version."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TestDatabase
from tests.support.chaos import plan_deliveries, send_all, verify, wait_until_processed
from tests.support.services import ThrowawayRedis
from tests.support.waiting import wait_until
from tests.support.webhook_fixture import build_fixture

SHOP = "chaos-test.myshopify.com"
RAPPIT = str(Path(sys.executable).parent / "rappit")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Processes:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *arguments: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [RAPPIT, *arguments], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = ThrowawayRedis(directory).start(appendonly=True)
    try:
        yield server
    finally:
        server.stop()


async def test_no_delivery_lost_duplicated_or_oversold_under_crashes(
    postgres_database: TestDatabase, private_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    secret_key = secrets.token_urlsafe(48)
    webhook_secret = "shpss_" + secrets.token_hex(8)
    fixture = await build_fixture(postgres_database.url, secret_key, webhook_secret, 40, SHOP)
    plan = plan_deliveries(fixture, webhook_secret, orders=60, seed=3)
    assert (plan.distinct, len(plan.expected)) == (300, 60)
    assert plan.repeated == 90
    assert plan.late > 0

    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "RAPPIT_ENV": "production",
        "RAPPIT_DATABASE_URL": postgres_database.url,
        "RAPPIT_REDIS_URL": private_redis.url,
        "RAPPIT_SECRET_KEY": secret_key,
        "RAPPIT_DATA_DIR": str(tmp_path / "data"),
        "RAPPIT_QUEUE_PREFIX": "chaos",
        "RAPPIT_LOG_LEVEL": "INFO",
        # Quick recovery, so the test does not wait out production intervals.
        "RAPPIT_SWEEP_INTERVAL_S": "1",
        "RAPPIT_SWEEP_AFTER_S": "3",
        "RAPPIT_JOB_LOCK_DURATION_MS": "3000",
        "RAPPIT_JOB_STALLED_INTERVAL_MS": "1000",
        "RAPPIT_WORKER_RECONNECT_DELAY_MS": "200",
        "RAPPIT_JOB_BACKOFF_MS": "200",
    }
    processes = Processes(env, logs)
    try:
        processes.start("api", "api", "--host", "127.0.0.1", "--port", str(port))
        processes.start("scheduler", "scheduler")
        for index in range(2):
            processes.start(f"worker-{index}", "worker", "--concurrency", "4")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def api_up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(api_up, timeout=60)
        await wait_until(
            lambda: all("worker started" in processes.log(f"worker-{i}") for i in range(2)),
            timeout=60,
        )

        chaos: list[str] = []
        progress = {"sent": 0}
        worker_killed = asyncio.Event()
        redis_stopped = asyncio.Event()
        answered_meanwhile: list[int] = []

        def on_progress(sent: int) -> None:
            progress["sent"] = sent
            if sent >= len(plan.sends) * 0.3 and not worker_killed.is_set():
                worker_killed.set()
            if sent >= len(plan.sends) * 0.5 and not redis_stopped.is_set():
                redis_stopped.set()

        async def disturb() -> None:
            await worker_killed.wait()
            processes.running["worker-0"].send_signal(signal.SIGKILL)
            processes.running["worker-0"].wait()
            chaos.append("worker-0 killed")
            await asyncio.sleep(0.5)
            processes.start("worker-0b", "worker", "--concurrency", "4")
            await redis_stopped.wait()
            private_redis.stop()
            chaos.append("redis stopped")
            stopped_at = progress["sent"]
            await asyncio.sleep(3)
            # Deliveries kept being acknowledged while Redis was away (committed rows; their
            # jobs are sent by the sweeper).
            answered_meanwhile.append(progress["sent"] - stopped_at)
            private_redis.start(appendonly=True)
            chaos.append("redis started")

        disturbing = asyncio.create_task(disturb())
        stats = await send_all(
            f"http://127.0.0.1:{port}",
            plan,
            webhook_secret,
            SHOP,
            concurrency=8,
            retry_delay_s=0.2,
            on_progress=on_progress,
        )
        await asyncio.wait_for(disturbing, timeout=60)
        assert chaos == ["worker-0 killed", "redis stopped", "redis started"]
        assert answered_meanwhile[0] > 0
        await wait_until_processed(postgres_database.engine, plan.distinct, timeout_s=180)
    finally:
        processes.stop_all()

    verdict = await verify(postgres_database.engine, plan, stats)
    assert verdict.problems == []
    assert verdict.counts["events"] == 300
    assert verdict.counts["orders"] == 60
    assert stats.answers["enqueued"] == 300
    # Every send was answered 200 in the end: once "enqueued" per delivery, "duplicate" for
    # each repeat; whatever failed meanwhile (Redis away does not fail a delivery) was retried.
    assert stats.answers["duplicate"] == len(plan.sends) - 300
