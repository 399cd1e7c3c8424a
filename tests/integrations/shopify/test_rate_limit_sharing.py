"""Several OS processes pulling one Shopify shop at once keep to its rate limit together, end to
end over HTTP against the sandbox.

Each process is ``rappit sync SHOP orders`` (``tests/support/sync_process.py``: started on one
cue, reading pages of 10 orders) with a SQLite database of its own, since a shop can be
connected only once per database, and with the same Redis and key prefix, so all of them
take their requests from the one bucket the shop has there. The sandbox shop is on Shopify's
standard plan (40 requests, leaking 2 per second) and logs every request it answered.

The unit-level versions of these checks (fake transports, in-process clients) are in
``test_client.py`` and ``tests/kit/test_ratelimit.py``.
"""

from __future__ import annotations

import asyncio
import calendar
import itertools
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from rappit.kit.crypto import SecretBox
from rappit.kit.db import create_engine, create_sessionmaker, unit_of_work
from rappit.models import Channel, ChannelType, Order, SyncRun
from rappit.organizations.service import create_organization
from rappit.queues.client import QueueClient
from rappit.sandbox.shopify.server import SandboxServer
from tests.support.factories import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[3]
API_VERSION = "2026-10"
ORDERS = 120
PAGE_SIZE = 10
STANDARD_BUCKET = 40
PROCESSES = 4
# Upper bounds against hangs, not timing assertions.
READY_TIMEOUT_S = 60.0
SYNC_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:  # the real clock: the buckets leak as time passes
        yield server


@pytest.fixture
def control(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.base_url}/_sandbox", timeout=30) as client:
        yield client


@dataclass
class SandboxShop:
    domain: str
    access_token: str
    api_base_url: str
    order_ids: set[str]


def new_shop(sandbox: SandboxServer, control: httpx.Client) -> SandboxShop:
    """A standard-plan shop of its own (an empty bucket, an empty log) with ORDERS orders."""
    domain = f"shared-limit-{uuid.uuid4().hex[:10]}.myshopify.com"
    response = control.post(
        "/shops",
        json={
            "domain": domain,
            "plan": "standard",
            "generate": {"products": 5, "orders": ORDERS, "seed": 11},
        },
    )
    assert response.status_code == 201, response.text
    info = response.json()["shop"]
    assert info["limits"]["rest_bucket"] == STANDARD_BUCKET
    assert info["limits"]["rest_leak"] == 2
    orders = sandbox.call(lambda: {str(order_id) for order_id in sandbox.state.shop(domain).orders})
    assert len(orders) == ORDERS
    return SandboxShop(domain, info["access_token"], info["api_base_url"], orders)


async def connected_database(template: Path, path: Path, shop: SandboxShop) -> str:
    """A migrated SQLite database with an organisation whose channel is ``shop``."""
    shutil.copyfile(template, path)
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            organization, _ = await create_organization(session, "Acme")
            session.add(
                Channel(
                    organization_id=organization.id,
                    type=ChannelType.SHOPIFY,
                    name="Acme store",
                    shop_domain=shop.domain,
                    api_version=API_VERSION,
                    api_base_url=shop.api_base_url,
                    credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
                        {"access_token": shop.access_token, "webhook_secret": "shpss_unused"}
                    ),
                    settings={},
                    sync_cursors={},
                )
            )
    finally:
        await engine.dispose()
    return url


@dataclass
class Pulled:
    run: SyncRun
    order_ids: list[str]


async def pulled(url: str) -> Pulled:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            runs = list((await session.scalars(select(SyncRun))).all())
            order_ids = list((await session.scalars(select(Order.external_order_id))).all())
    finally:
        await engine.dispose()
    assert len(runs) == 1
    return Pulled(runs[0], order_ids)


def environment(database_url: str, data_dir: Path, redis_url: str, prefix: str) -> dict[str, str]:
    # The developer's own RAPPIT_* settings must not leak in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAPPIT_")}
    env.update(
        RAPPIT_DATABASE_URL=database_url,
        RAPPIT_DATA_DIR=str(data_dir),
        RAPPIT_REDIS_URL=redis_url,
        RAPPIT_QUEUE_PREFIX=prefix,
        RAPPIT_SECRET_KEY=TEST_SECRET_KEY,
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    return env


async def sync_together(
    tmp_path: Path,
    template: Path,
    shop: SandboxShop,
    processes: int,
    redis_url: str,
    prefix: str,
    *,
    page_size: int = PAGE_SIZE,
    before_start: Callable[[], None] | None = None,
) -> list[Pulled]:
    """Start ``processes`` ``rappit sync SHOP orders`` processes, let them all go at once, wait
    for them to finish and return what each database holds."""
    urls = [
        await connected_database(template, tmp_path / f"sync-{index}.db", shop)
        for index in range(processes)
    ]
    command = [sys.executable, "-m", "tests.support.sync_process", str(page_size)]
    started: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        for index, url in enumerate(urls):
            log = tmp_path / f"sync-{index}.log"
            with log.open("w") as stderr:
                process = subprocess.Popen(
                    [*command, shop.domain, "orders"],
                    cwd=ROOT,
                    env=environment(url, tmp_path / f"data-{index}", redis_url, prefix),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    text=True,
                )
            started.append((process, log))
        for process, log in started:
            assert process.stdout is not None
            line = await asyncio.wait_for(
                asyncio.to_thread(process.stdout.readline), READY_TIMEOUT_S
            )
            assert line == "ready\n", log.read_text()
        if before_start is not None:
            before_start()
        for process, _ in started:  # the cue: every process starts pulling now
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.close()
        for process, log in started:
            code = await asyncio.to_thread(process.wait, SYNC_TIMEOUT_S)
            assert process.stdout is not None
            output = process.stdout.read()
            assert code == 0, f"{output}\n{log.read_text()}"
            assert "COMPLETED" in output, output
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
    return [await pulled(url) for url in urls]


def request_log(control: httpx.Client, shop: SandboxShop) -> dict[str, Any]:
    response = control.get(f"/shops/{shop.domain}/requests", params={"recent": 2000})
    assert response.status_code == 200, response.text
    log: dict[str, Any] = response.json()
    return log


def epoch(stamp: str) -> float:
    """The log's ``2026-01-02T03:04:05.123456789Z`` as epoch seconds."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + int(fraction.ljust(9, "0")) / 1e9


def requests_per_sync(page_size: int) -> int:
    """A pull asks for orders/count.json (the progress total), then reads the pages."""
    return 1 + math.ceil(ORDERS / page_size)


def assert_complete(result: Pulled, shop: SandboxShop) -> None:
    """Every order of the shop, each exactly once, and a run that says so."""
    assert sorted(result.order_ids) == sorted(shop.order_ids)
    assert result.run.status == "COMPLETED"
    assert result.run.total == ORDERS
    assert (result.run.counts["fetched"], result.run.counts["created"]) == (ORDERS, ORDERS)


async def test_four_sync_processes_share_the_standard_plan_bucket_without_a_429(
    tmp_path: Path,
    sqlite_template: Path,
    sandbox: SandboxServer,
    control: httpx.Client,
    redis_url: str,
    queue_client: QueueClient,
) -> None:
    shop = new_shop(sandbox, control)
    per_sync = requests_per_sync(PAGE_SIZE)
    # More requests than the bucket holds, sent at once: the burst runs out and the processes
    # have to share what leaks.
    assert PROCESSES * per_sync > STANDARD_BUCKET

    results = await sync_together(
        tmp_path, sqlite_template, shop, PROCESSES, redis_url, queue_client.prefix
    )

    for result in results:
        assert_complete(result, shop)
    log = request_log(control, shop)
    # No 429, and every request the shop answered is one the pulls needed: no retries.
    assert (log["throttled"], log["forced"]) == (0, 0)
    assert (log["requests"], log["rest"]) == (PROCESSES * per_sync,) * 2
    statuses = [entry["status"] for entry in log["recent"]]
    assert statuses == [200] * PROCESSES * per_sync
    paths = [entry["path"].rsplit("/", 1)[-1] for entry in log["recent"]]
    assert paths.count("count.json") == PROCESSES
    assert paths.count("orders.json") == PROCESSES * (per_sync - 1)
    # The bucket all of them used is the one under the deployment's Redis prefix.
    bucket = f"{queue_client.prefix}:ratelimit:rest:{shop.domain}"
    stored = await queue_client.redis.hgetall(bucket)
    assert (stored["cap"], stored["rate"]) == ("40", "2")


async def test_a_429_is_waited_out_for_its_retry_after_and_the_sync_completes(
    tmp_path: Path,
    sqlite_template: Path,
    sandbox: SandboxServer,
    control: httpx.Client,
    redis_url: str,
    queue_client: QueueClient,
) -> None:
    shop = new_shop(sandbox, control)
    retry_after = 0.5
    injected = 2
    # Larger pages: after a 429 the bucket counts as full and the pull goes on at the leak rate.
    page_size = 40

    def throttle() -> None:
        response = control.post(
            f"/shops/{shop.domain}/throttle", json={"count": injected, "retry_after": retry_after}
        )
        assert response.json() == {"rest": injected, "graphql": 0}

    (result,) = await sync_together(
        tmp_path,
        sqlite_template,
        shop,
        1,
        redis_url,
        queue_client.prefix,
        page_size=page_size,
        before_start=throttle,
    )

    assert_complete(result, shop)
    log = request_log(control, shop)
    assert (log["throttled"], log["forced"]) == (injected, injected)
    assert log["requests"] == requests_per_sync(page_size) + injected
    entries = log["recent"]
    assert [entry["status"] for entry in entries] == [429] * injected + [200] * requests_per_sync(
        page_size
    )
    # The refused request (the count) is repeated, and only once Retry-After has passed since
    # the shop refused it: the sandbox's arrival times, on the machine's one clock.
    assert [entry["path"].rsplit("/", 1)[-1] for entry in entries[: injected + 1]] == [
        "count.json"
    ] * (injected + 1)
    arrivals = [epoch(entry["at"]) for entry in entries[: injected + 1]]
    for refused, repeated in itertools.pairwise(arrivals):
        assert repeated - refused >= retry_after
