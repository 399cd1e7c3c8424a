"""Enqueue after commit (both directions) and the sweeper that re-sends what never reached
Redis."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from rappit.kit.db import create_sessionmaker, unit_of_work
from rappit.models import WebhookEvent, WebhookEventStatus
from rappit.queues.client import QueueClient
from rappit.queues.enqueue import SESSION_QUEUE_KEY, NoQueueConfigured, enqueue
from rappit.queues.names import QueueName
from rappit.queues.sweeper import sweep
from rappit.runtime import Runtime
from rappit.webhooks.tasks import pending_process_jobs, process_job
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import make_channel
from tests.support.services import ThrowawayRedis

QUEUE = QueueName.WEBHOOK_PROCESSING


async def _event(session, tenant: Tenant) -> WebhookEvent:  # type: ignore[no-untyped-def]
    channel = await make_channel(session, tenant.organization_id)
    event = WebhookEvent(
        organization_id=tenant.organization_id,
        source="shopify",
        channel_id=channel.id,
        topic="orders/create",
        external_event_id=str(uuid.uuid4()),
        payload={"id": 1},
    )
    session.add(event)
    await session.flush()
    return event


async def test_jobs_are_sent_only_after_commit(queue_runtime: Runtime, tenant: Tenant) -> None:
    client = queue_runtime.queue
    assert client is not None
    async with unit_of_work(queue_runtime.sessionmaker) as session:
        event = await _event(session, tenant)
        enqueue(session, process_job(tenant.organization_id, event.id))
        # Still inside the transaction: nothing in Redis yet.
        assert await client.get_job(QUEUE, f"webhook-event.{event.id}") is None
    job = await client.get_job(QUEUE, f"webhook-event.{event.id}")
    assert job is not None
    assert job.data == {"organization_id": str(tenant.organization_id), "event_id": str(event.id)}
    assert await client.job_state(QUEUE, f"webhook-event.{event.id}") == "waiting"


async def test_a_rollback_drops_the_jobs(queue_runtime: Runtime, tenant: Tenant) -> None:
    client = queue_runtime.queue
    assert client is not None
    event_id = None

    async def fails_after_enqueue() -> None:
        nonlocal event_id
        async with unit_of_work(queue_runtime.sessionmaker) as session:
            event = await _event(session, tenant)
            event_id = event.id
            enqueue(session, process_job(tenant.organization_id, event.id))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fails_after_enqueue()
    assert await client.get_job(QUEUE, f"webhook-event.{event_id}") is None
    assert (await client.counts())["webhook-processing"]["waiting"] == 0


async def test_enqueue_needs_a_queue_client(database: TestDatabase, tenant: Tenant) -> None:
    async with database.sessionmaker() as session:
        with pytest.raises(NoQueueConfigured):
            enqueue(session, process_job(tenant.organization_id, uuid.uuid4()))


async def test_redis_down_at_commit_leaves_the_row_for_the_sweeper(
    database: TestDatabase, tenant: Tenant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ThrowawayRedis(tmp_path)  # not started yet: Redis is down
    client = QueueClient(server.url, prefix="sweep", attempts=3, backoff_ms=50)
    sessionmaker = create_sessionmaker(database.engine, info={SESSION_QUEUE_KEY: client})
    try:
        caplog.set_level(logging.WARNING, logger="rappit.queues.enqueue")
        async with unit_of_work(sessionmaker) as session:
            event = await _event(session, tenant)
            enqueue(session, process_job(tenant.organization_id, event.id))
        # The commit stands; the send failed and says so.
        assert "1 job(s) not sent" in caplog.text
        async with database.sessionmaker() as session:
            row = await session.get_one(WebhookEvent, event.id)
            assert row.status == WebhookEventStatus.ENQUEUED

        server.start()
        # Too recent to count as lost:
        assert (
            await sweep(database.sessionmaker, client, pending_process_jobs, older_than_s=60) == 0
        )
        assert await sweep(database.sessionmaker, client, pending_process_jobs, older_than_s=0) == 1
        assert await client.job_state(QUEUE, f"webhook-event.{event.id}") == "waiting"
        # A second sweep re-sends the same id: still one job.
        assert await sweep(database.sessionmaker, client, pending_process_jobs, older_than_s=0) == 1
        assert (await client.counts())["webhook-processing"]["waiting"] == 1
    finally:
        await client.close()
        server.stop()


async def test_the_sweeper_picks_waiting_and_stuck_events_only(
    database: TestDatabase, tenant: Tenant
) -> None:
    from datetime import timedelta

    from rappit.kit.types import utcnow

    now = utcnow()
    cases = [
        ("enqueued-2min", WebhookEventStatus.ENQUEUED, timedelta(minutes=2)),
        ("enqueued-now", WebhookEventStatus.ENQUEUED, timedelta(0)),
        ("processing-2min", WebhookEventStatus.PROCESSING, timedelta(minutes=2)),
        ("processing-1h", WebhookEventStatus.PROCESSING, timedelta(hours=1)),
        ("completed-1h", WebhookEventStatus.COMPLETED, timedelta(hours=1)),
        ("failed-1h", WebhookEventStatus.FAILED, timedelta(hours=1)),
        ("skipped-1h", WebhookEventStatus.SKIPPED, timedelta(hours=1)),
    ]
    ids: dict[str, uuid.UUID] = {}
    async with unit_of_work(database.sessionmaker) as session:
        for name, status, age in cases:
            event = await _event(session, tenant)
            event.status = status
            event.updated_at = now - age
            ids[name] = event.id
    # 60 s of patience: ENQUEUED for 2 min is lost; PROCESSING for 2 min may still be running,
    # PROCESSING for an hour (over 10 x 60 s) is stuck and its old job is replaced.
    async with database.sessionmaker() as session:
        pending = await pending_process_jobs(session, now - timedelta(seconds=60), 100)
    assert sorted((r.job_id, r.replace) for r in pending) == sorted(
        [
            (f"webhook-event.{ids['enqueued-2min']}", False),
            (f"webhook-event.{ids['processing-1h']}", True),
        ]
    )
    assert {r.data["organization_id"] for r in pending} == {str(tenant.organization_id)}
