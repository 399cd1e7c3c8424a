"""Webhook events after they are recorded (``rappit.webhooks.inbox`` records them): replay on
request, and payloads redacted for privacy requests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.errors import Conflict, NotFound
from rappit.kit.types import utcnow
from rappit.models import Channel, WebhookEvent, WebhookEventStatus
from rappit.queues.enqueue import enqueue
from rappit.webhooks.tasks import process_job

# The privacy requests themselves are the record that a request was made and answered.
PRIVACY_REQUEST_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")


@dataclass(frozen=True)
class Delivery:
    source: str
    topic: str
    external_event_id: str
    # The body as received: JSON text, already checked to be a JSON object.
    payload: str
    event_id: str | None = None
    triggered_at: datetime | None = None
    api_version: str | None = None


async def replay(
    session: AsyncSession, organization_id: uuid.UUID, event_id: uuid.UUID
) -> WebhookEvent:
    """Process an event again (after the cause of its failure was fixed). An event being
    processed right now cannot be replayed; a finished one can (it is idempotent)."""
    event = await session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.organization_id == organization_id, WebhookEvent.id == event_id)
        .with_for_update()
    )
    if event is None:
        raise NotFound("webhook event not found")
    if event.status == WebhookEventStatus.PROCESSING:
        raise Conflict("the event is being processed right now; replay it once it has finished")
    event.status = WebhookEventStatus.ENQUEUED
    event.error = None
    event.updated_at = utcnow()
    # The earlier job may still be kept (failed jobs for 7 days, completed for a day) under the
    # same id; replace it so the new one runs.
    enqueue(session, process_job(organization_id, event.id, replace=True))
    return event


REDACTED_PAYLOAD = {"redacted": True}


async def redact_payloads(
    session: AsyncSession, channel: Channel, resource_ids: list[str] | None
) -> int:
    """Replace stored payloads (which hold the customer's data) of a channel's events about
    these resources, or of all its events when ``resource_ids`` is None."""
    statement = update(WebhookEvent).where(
        WebhookEvent.organization_id == channel.organization_id,
        WebhookEvent.channel_id == channel.id,
        WebhookEvent.topic.not_in(PRIVACY_REQUEST_TOPICS),
    )
    if resource_ids is not None:
        if not resource_ids:
            return 0
        statement = statement.where(WebhookEvent.resource_id.in_(resource_ids))
    result = await session.execute(
        statement.values(payload=REDACTED_PAYLOAD).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
