"""Jobs of the webhook inbox: one ``webhooks.process`` job per event, keyed by the event's id,
and the pending-row source the sweeper uses to re-send lost ones."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.models import WebhookEvent, WebhookEventStatus
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName

PROCESS_JOB = "webhooks.process"
SWEEP_JOB = "webhooks.sweep"


def process_job(organization_id: uuid.UUID, event_id: uuid.UUID) -> JobRequest:
    return JobRequest(
        queue=QueueName.WEBHOOK_PROCESSING,
        name=PROCESS_JOB,
        job_id=f"webhook-event.{event_id}",
        data={"organization_id": str(organization_id), "event_id": str(event_id)},
    )


async def pending_process_jobs(
    session: AsyncSession, older_than: datetime, limit: int
) -> list[JobRequest]:
    # Deployment-wide on purpose: the sweeper works for every organisation, and each job it
    # sends carries the event's organisation.
    rows = await session.execute(
        select(WebhookEvent.organization_id, WebhookEvent.id)
        .where(
            WebhookEvent.status == WebhookEventStatus.ENQUEUED,
            WebhookEvent.updated_at < older_than,
        )
        .order_by(WebhookEvent.id)
        .limit(limit)
    )
    return [process_job(organization_id, event_id) for organization_id, event_id in rows]
