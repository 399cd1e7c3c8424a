"""Jobs of the webhook inbox: one ``webhooks.process`` job per event, keyed by the event's id,
and the pending-row source the sweeper uses to re-send lost ones."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.types import utcnow
from rappit.models import WebhookEvent, WebhookEventStatus
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName

PROCESS_JOB = "webhooks.process"
SWEEP_JOB = "webhooks.sweep"
# An event PROCESSING for ten times the sweeper's patience is taken as stuck.
STUCK_PROCESSING_FACTOR = 10


def process_job(
    organization_id: uuid.UUID, event_id: uuid.UUID, *, replace: bool = False
) -> JobRequest:
    return JobRequest(
        queue=QueueName.WEBHOOK_PROCESSING,
        name=PROCESS_JOB,
        job_id=f"webhook-event.{event_id}",
        data={"organization_id": str(organization_id), "event_id": str(event_id)},
        replace=replace,
    )


async def pending_process_jobs(
    session: AsyncSession, older_than: datetime, limit: int
) -> list[JobRequest]:
    """Events still ``ENQUEUED`` since before ``older_than`` (their job never reached Redis or
    was lost with it), and events stuck in ``PROCESSING`` far longer than any processing takes
    (the job died in a way its worker could not report; its finished job is replaced)."""
    # Deployment-wide on purpose: the sweeper works for every organisation, and each job it
    # sends carries the event's organisation.
    now = utcnow()
    stuck_before = now - STUCK_PROCESSING_FACTOR * (now - older_than)
    rows = await session.execute(
        select(WebhookEvent.organization_id, WebhookEvent.id, WebhookEvent.status)
        .where(
            or_(
                (WebhookEvent.status == WebhookEventStatus.ENQUEUED)
                & (WebhookEvent.updated_at < older_than),
                (WebhookEvent.status == WebhookEventStatus.PROCESSING)
                & (WebhookEvent.updated_at < stuck_before),
            )
        )
        .order_by(WebhookEvent.id)
        .limit(limit)
    )
    return [
        process_job(org_id, event_id, replace=status == WebhookEventStatus.PROCESSING)
        for org_id, event_id, status in rows
    ]
