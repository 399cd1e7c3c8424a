"""Jobs of sync runs: one ``sync.run`` job per run (on the channel type's sync queue), the
pending-row source the sweeper uses, and the periodic job that starts reconciliations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.types import utcnow
from rappit.models import Channel, ChannelType, SyncRun, SyncRunStatus
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName

RUN_JOB = "sync.run"
SWEEP_JOB = "sync.sweep"
# Periodic: starts a reconciliation run for every active channel (rappit.sync.reconciliation).
RECONCILE_JOB = "sync.reconcile"
STUCK_RUNNING_FACTOR = 30

QUEUE_BY_CHANNEL_TYPE = {
    ChannelType.SHOPIFY.value: QueueName.SHOPIFY_SYNC,
    ChannelType.WOOCOMMERCE.value: QueueName.WOOCOMMERCE_SYNC,
}


def run_job(
    channel_type: str, organization_id: uuid.UUID, run_id: uuid.UUID, *, replace: bool = False
) -> JobRequest:
    return JobRequest(
        queue=QUEUE_BY_CHANNEL_TYPE[channel_type],
        name=RUN_JOB,
        job_id=f"sync-run.{run_id}",
        data={"organization_id": str(organization_id), "run_id": str(run_id)},
        # A pull of a large store takes long and has its own resumable cursor: fewer, spaced
        # attempts, each going on from the last page.
        attempts=5,
        replace=replace,
    )


async def pending_run_jobs(
    session: AsyncSession, older_than: datetime, limit: int
) -> list[JobRequest]:
    """Runs still PENDING since before ``older_than`` and runs RUNNING with no progress for far
    longer (their worker died in a way it could not report)."""
    now = utcnow()
    stuck_before = now - STUCK_RUNNING_FACTOR * (now - older_than)
    # Deployment-wide on purpose, like every sweeper source.
    rows = await session.execute(
        select(SyncRun.organization_id, SyncRun.id, SyncRun.status, Channel.type)
        .join(Channel, Channel.id == SyncRun.channel_id)
        .where(
            or_(
                (SyncRun.status == SyncRunStatus.PENDING) & (SyncRun.updated_at < older_than),
                (SyncRun.status == SyncRunStatus.RUNNING) & (SyncRun.updated_at < stuck_before),
            )
        )
        .order_by(SyncRun.id)
        .limit(limit)
    )
    return [
        run_job(channel_type, org_id, run_id, replace=status == SyncRunStatus.RUNNING)
        for org_id, run_id, status, channel_type in rows
    ]
