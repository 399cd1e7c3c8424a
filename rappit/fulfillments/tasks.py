"""Jobs that write fulfilments back to their channel: one ``fulfillments.writeback`` job per
fulfilment on ``channel-sync`` (the same id for its creation and every later tracking change, so
BullMQ never runs two writes of one fulfilment at once), and the pending-row source the sweeper
uses to re-send lost ones."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.models import Fulfillment, FulfillmentSyncStatus
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName

WRITEBACK_JOB = "fulfillments.writeback"
SWEEP_JOB = "fulfillments.sweep"


def writeback_job(
    organization_id: uuid.UUID, fulfillment_id: uuid.UUID, *, replace: bool = False
) -> JobRequest:
    """``replace``: a change after an earlier write finished (its job kept, completed or
    failed, under the same id) needs the job to run again."""
    return JobRequest(
        queue=QueueName.CHANNEL_SYNC,
        name=WRITEBACK_JOB,
        job_id=f"fulfillment-writeback.{fulfillment_id}",
        data={"organization_id": str(organization_id), "fulfillment_id": str(fulfillment_id)},
        replace=replace,
    )


async def pending_writeback_jobs(
    session: AsyncSession, older_than: datetime, limit: int
) -> list[JobRequest]:
    """Fulfilments with a write still pending since before ``older_than``: their job never
    reached Redis, was lost with it, or finished just before a new change came in. A job
    still waiting or running under that id makes the re-send a no-op."""
    # Deployment-wide on purpose, like every sweeper source; each job names its organisation.
    rows = await session.execute(
        select(Fulfillment.organization_id, Fulfillment.id)
        .where(
            Fulfillment.sync_status == FulfillmentSyncStatus.PENDING,
            Fulfillment.updated_at < older_than,
        )
        .order_by(Fulfillment.updated_at)
        .limit(limit)
    )
    return [writeback_job(org_id, fulfillment_id, replace=True) for org_id, fulfillment_id in rows]
