"""Webhooks through real workers on real Redis: from delivery to a reserved order, and a worker
killed in the middle of an event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import select

from rappit.models import Order, Reservation, WebhookEvent
from rappit.queues.names import QueueName
from rappit.queues.worker import QueueWorker, WorkerOptions
from rappit.runtime import Runtime
from rappit.webhooks.processing import process_event_handler
from rappit.wiring import Background, webhook_topics
from tests.conftest import TestDatabase
from tests.integrations.shopify.conftest import ShopifyShop
from tests.integrations.shopify.payloads import order
from tests.support.factories import assert_ledger_replays
from tests.support.shopify import post_webhook
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]


async def _event_status(database: TestDatabase) -> str | None:
    async with database.sessionmaker() as session:
        event = (await session.scalars(select(WebhookEvent))).one_or_none()
        return event.status if event else None


async def _reserved(database: TestDatabase) -> list[int]:
    async with database.sessionmaker() as session:
        rows = await session.scalars(
            select(Reservation.quantity).where(
                Reservation.released_at.is_(None), Reservation.consumed_at.is_(None)
            )
        )
        return sorted(rows.all())


async def test_a_delivery_ends_as_a_reserved_order(
    webhook_client: httpx.AsyncClient,
    shopify: ShopifyShop,
    database: TestDatabase,
    queue_runtime: Runtime,
) -> None:
    background = Background(
        queue_runtime, queues=[QueueName.WEBHOOK_PROCESSING], run_scheduler=False
    )
    background.start()
    try:
        response = await post_webhook(webhook_client, "orders/create", order(), shop=shopify.domain)
        assert response.json() == {"status": "enqueued"}
        await wait_until(
            lambda: _is_completed(database), timeout=30, message="event completed by a worker"
        )
    finally:
        assert await background.stop() is True
    async with database.sessionmaker() as session:
        assert (await session.scalars(select(Order.status))).all() == ["RESERVED"]
    assert await _reserved(database) == [1, 2]


async def _is_completed(database: TestDatabase) -> bool:
    return await _event_status(database) == "COMPLETED"


async def test_a_worker_killed_mid_event_leaves_it_completed_once(
    webhook_client: httpx.AsyncClient,
    shopify: ShopifyShop,
    database: TestDatabase,
    queue_runtime: Runtime,
    redis_url: str,
    tmp_path: Path,
) -> None:
    assert queue_runtime.queue is not None
    response = await post_webhook(webhook_client, "orders/create", order(), shop=shopify.domain)
    assert response.json() == {"status": "enqueued"}

    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.crashing_webhook_worker", database.url, redis_url,
         queue_runtime.queue.prefix, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    rescuer: QueueWorker | None = None
    try:
        await wait_until(
            lambda: (tmp_path / "mid-event").exists(), timeout=30, message="worker mid-event"
        )
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
        assert await _event_status(database) == "PROCESSING"
        assert await _reserved(database) == []  # nothing of the killed attempt was committed

        rescuer = QueueWorker(
            QueueName.WEBHOOK_PROCESSING,
            {"webhooks.process": process_event_handler(database.sessionmaker, webhook_topics())},
            queue_runtime.queue,
            WorkerOptions(concurrency=2, lock_duration_ms=2000, stalled_interval_ms=1000),
        )
        rescuer.start()
        await wait_until(lambda: _is_completed(database), timeout=30, message="rescued event")
    finally:
        if process.poll() is None:
            process.kill()
        if rescuer is not None:
            await rescuer.close(timeout_s=5)

    async with database.sessionmaker() as session:
        event = (await session.scalars(select(WebhookEvent))).one()
        assert (event.status, event.attempts) == ("COMPLETED", 2)
        assert (await session.scalars(select(Order.status))).all() == ["RESERVED"]
        await assert_ledger_replays(session, shopify.channel.organization_id)
    assert await _reserved(database) == [1, 2]
