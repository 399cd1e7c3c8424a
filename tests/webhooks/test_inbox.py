"""The webhook inbox: deliveries arriving together share one statement and one commit, and
each is still answered for itself (new, duplicate, or its own error)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from rappit.kit.db import unit_of_work
from rappit.kit.types import utcnow
from rappit.models import WebhookEvent
from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from rappit.webhooks.inbox import InboxTarget, WebhookInbox
from rappit.webhooks.service import Delivery
from rappit.webhooks.tasks import pending_process_jobs
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import make_channel


def delivery(webhook_id: str, body: dict[str, object] | None = None) -> Delivery:
    return Delivery(
        source="shopify",
        topic="orders/create",
        external_event_id=webhook_id,
        payload=json.dumps(body if body is not None else {"id": webhook_id}),
    )


@pytest.fixture
async def target(database: TestDatabase, tenant: Tenant) -> InboxTarget:
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id)
    return InboxTarget(organization_id=tenant.organization_id, channel_id=channel.id)


async def events(database: TestDatabase) -> list[WebhookEvent]:
    async with database.sessionmaker() as session:
        return list((await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))).all())


async def job_states(queue: QueueClient, rows: list[WebhookEvent]) -> list[str]:
    return [
        await queue.job_state(QueueName.WEBHOOK_PROCESSING, f"webhook-event.{row.id}")
        for row in rows
    ]


async def test_deliveries_arriving_together_share_a_statement(
    database: TestDatabase, queue_client: QueueClient, target: InboxTarget
) -> None:
    inbox = WebhookInbox(database.engine, queue_client)
    answers = await asyncio.gather(*(inbox.record(target, delivery(f"wh-{n}")) for n in range(50)))

    assert answers == [True] * 50
    # The first two found the inbox idle and went alone; the 48 that came meanwhile went
    # together in the next flush.
    assert inbox.statements == 3
    rows = await events(database)
    assert sorted(row.external_event_id for row in rows) == sorted(f"wh-{n}" for n in range(50))
    assert {row.status for row in rows} == {"ENQUEUED"}
    assert await job_states(queue_client, rows) == ["waiting"] * 50


async def test_a_flush_never_takes_more_than_its_limits(
    database: TestDatabase, queue_client: QueueClient, target: InboxTarget
) -> None:
    by_rows = WebhookInbox(database.engine, queue_client, max_rows=10)
    # 2 alone, then the other 20 in two flushes of 10.
    calls = [by_rows.record(target, delivery(f"row-{n}"), size=10) for n in range(22)]
    assert await asyncio.gather(*calls) == [True] * 22
    assert by_rows.statements == 4

    by_bytes = WebhookInbox(database.engine, queue_client, max_bytes=10_000)
    # 2 alone, then bodies of 4,000 bytes two to a flush; one larger than the limit goes alone.
    sizes = [4_000] * 7 + [25_000]
    calls = [by_bytes.record(target, delivery(f"big-{n}"), size) for n, size in enumerate(sizes)]
    assert await asyncio.gather(*calls) == [True] * 8
    assert by_bytes.statements == 2 + 3 + 1
    assert len(await events(database)) == 30


async def test_repeats_in_one_flush_and_across_flushes_are_duplicates(
    database: TestDatabase, queue_client: QueueClient, target: InboxTarget
) -> None:
    inbox = WebhookInbox(database.engine, queue_client)
    answers = await asyncio.gather(
        *(inbox.record(target, delivery(f"wh-{n % 5}")) for n in range(40))
    )
    assert answers.count(True) == 5  # one per webhook id
    assert sorted(n % 5 for n, new in enumerate(answers) if new) == [0, 1, 2, 3, 4]
    assert await inbox.record(target, delivery("wh-3")) is False
    rows = await events(database)
    assert sorted(row.external_event_id for row in rows) == [f"wh-{n}" for n in range(5)]
    assert await job_states(queue_client, rows) == ["waiting"] * 5


async def test_a_bad_row_fails_alone(
    database: TestDatabase, queue_client: QueueClient, target: InboxTarget
) -> None:
    inbox = WebhookInbox(database.engine, queue_client)
    gone = InboxTarget(organization_id=target.organization_id, channel_id=uuid.uuid4())
    calls = [inbox.record(target, delivery(f"wh-{n}")) for n in range(6)]
    calls.insert(3, inbox.record(gone, delivery("orphan")))
    answers = await asyncio.gather(*calls, return_exceptions=True)

    assert isinstance(answers[3], IntegrityError)  # no such channel
    assert answers[:3] + answers[4:] == [True] * 6
    rows = await events(database)
    assert sorted(row.external_event_id for row in rows) == [f"wh-{n}" for n in range(6)]
    assert await job_states(queue_client, rows) == ["waiting"] * 6


async def test_redis_away_the_delivery_is_kept_for_the_sweeper(
    database: TestDatabase, target: InboxTarget
) -> None:
    away = QueueClient("redis://127.0.0.1:9/0", prefix="nowhere", attempts=1, backoff_ms=10)
    try:
        inbox = WebhookInbox(database.engine, away)
        assert await inbox.record(target, delivery("wh-1")) is True
    finally:
        await away.close()
    [row] = await events(database)
    assert row.status == "ENQUEUED"
    async with database.sessionmaker() as session:
        pending = await pending_process_jobs(session, utcnow() + timedelta(seconds=1), 10)
    assert [job.job_id for job in pending] == [f"webhook-event.{row.id}"]


async def test_a_caller_that_goes_away_does_not_take_its_delivery_along(
    database: TestDatabase, queue_client: QueueClient, target: InboxTarget
) -> None:
    inbox = WebhookInbox(database.engine, queue_client)
    waiting = asyncio.create_task(inbox.record(target, delivery("wh-gone")))
    await asyncio.sleep(0)  # submitted, its flush under way
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await inbox.drain()
    [row] = await events(database)
    assert row.external_event_id == "wh-gone"
    assert await job_states(queue_client, [row]) == ["waiting"]


async def test_the_body_is_stored_as_received(
    database: TestDatabase, queue_client: QueueClient, target: InboxTarget
) -> None:
    inbox = WebhookInbox(database.engine, queue_client)
    body = {"id": 7, "note": "Grüße ✓", "lines": [{"price": "10.00"}], "test": False}
    assert await inbox.record(target, delivery("wh-7", body)) is True
    [row] = await events(database)
    assert row.payload == body


async def test_no_queue_no_recording(database: TestDatabase, target: InboxTarget) -> None:
    with pytest.raises(RuntimeError, match="queue client"):
        await WebhookInbox(database.engine, None).record(target, delivery("wh-1"))
    assert await events(database) == []
    with pytest.raises(ValueError):
        WebhookInbox(database.engine, None, max_rows=0)
