"""``rappit webhooks list|replay``: the operator's view of the webhook inbox."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from rappit.cli import app
from rappit.kit.db import unit_of_work
from rappit.models import WebhookEvent, WebhookEventStatus
from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import TEST_SECRET_KEY, make_channel


@pytest.fixture
def runner(
    tmp_path: Path, database: TestDatabase, redis_url: str, queue_client: QueueClient
) -> CliRunner:
    return CliRunner(
        env={
            "RAPPIT_DATA_DIR": str(tmp_path / "data"),
            "RAPPIT_DATABASE_URL": database.url,
            "RAPPIT_REDIS_URL": redis_url,
            "RAPPIT_QUEUE_PREFIX": queue_client.prefix,
            "RAPPIT_SECRET_KEY": TEST_SECRET_KEY,
            "RAPPIT_ENV": None,
            "COLUMNS": "200",
        }
    )


async def _invoke(runner: CliRunner, *arguments: str) -> Result:
    # The commands run their own event loop: keep them off the test's.
    return await asyncio.to_thread(runner.invoke, app, list(arguments))


async def _failed_event(database: TestDatabase, tenant: Tenant) -> WebhookEvent:
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id)
        event = WebhookEvent(
            organization_id=tenant.organization_id,
            source="shopify",
            channel_id=channel.id,
            topic="fulfillments/create",
            external_event_id="wh-1",
            payload={"id": 1},
            status=WebhookEventStatus.FAILED,
            attempts=5,
            error="OrderNotYetKnown: order 1 is not known yet",
        )
        session.add(event)
    return event


async def test_list_and_replay_a_failed_event(
    runner: CliRunner, database: TestDatabase, tenant: Tenant, queue_client: QueueClient
) -> None:
    event = await _failed_event(database, tenant)

    listed = await _invoke(runner, "webhooks", "list", "--status", "FAILED")
    assert listed.exit_code == 0, listed.output
    assert str(event.id) in listed.stdout
    assert "OrderNotYetKnown: order 1 is not known yet" in listed.stdout

    replayed = await _invoke(runner, "webhooks", "replay", str(event.id))
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout == f"Event {event.id} (fulfillments/create) is queued again.\n"
    async with database.sessionmaker() as session:
        row = await session.get_one(WebhookEvent, event.id)
        assert (row.status, row.error, row.attempts) == ("ENQUEUED", None, 5)
    assert (
        await queue_client.job_state(QueueName.WEBHOOK_PROCESSING, f"webhook-event.{event.id}")
        == "waiting"
    )


async def test_replay_of_an_unknown_event_fails_with_one_line(runner: CliRunner) -> None:
    missing = uuid.uuid4()
    result = await _invoke(runner, "webhooks", "replay", str(missing))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: no webhook event {missing}"
