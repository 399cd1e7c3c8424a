"""Jobs of the inventory push: one ``inventory.push`` job per channel and debounce window on
``channel-sync``, and the pending-row source the sweeper uses (marks whose job was lost)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.types import utcnow
from rappit.models import InventoryPushMark
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName
from rappit.queues.sweeper import PendingSource

PUSH_JOB = "inventory.push"
SWEEP_JOB = "inventory.push-sweep"
# What the runtime's settings say when a session does not (tests opening bare sessions).
DEFAULT_DEBOUNCE_MS = 1000
DEFAULT_CLAIM_TIMEOUT_S = 120


def push_job(
    organization_id: uuid.UUID, channel_id: uuid.UUID, *, now_ms: int, debounce_ms: int
) -> JobRequest:
    """The push job of a channel for the debounce window ``now`` falls in. Every change of one
    window asks for the same job id, so they share one job, which runs when the window ends;
    the next window's changes get the next job."""
    debounce_ms = max(debounce_ms, 1)
    window = now_ms // debounce_ms
    return JobRequest(
        queue=QueueName.CHANNEL_SYNC,
        name=PUSH_JOB,
        job_id=f"inventory-push.{channel_id}.{window}",
        data={"organization_id": str(organization_id), "channel_id": str(channel_id)},
        delay_ms=(window + 1) * debounce_ms - now_ms,
    )


def now_ms() -> int:
    return int(utcnow().timestamp() * 1000)


def pending_push_jobs_source(
    *, debounce_ms: int, claim_timeout_s: int = DEFAULT_CLAIM_TIMEOUT_S
) -> PendingSource:
    """The sweeper's source: a push job for every channel with a mark that has waited since
    before ``older_than`` with no live claim (its job never reached Redis, or died with
    it)."""

    async def pending(session: AsyncSession, older_than: datetime, limit: int) -> list[JobRequest]:
        claim_expired = utcnow() - timedelta(seconds=claim_timeout_s)
        # Deployment-wide on purpose, like every sweeper source.
        rows = await session.execute(
            select(InventoryPushMark.organization_id, InventoryPushMark.channel_id)
            .where(
                InventoryPushMark.marked_at < older_than,
                or_(
                    InventoryPushMark.claimed_by.is_(None),
                    InventoryPushMark.claimed_at < claim_expired,
                ),
            )
            .group_by(InventoryPushMark.organization_id, InventoryPushMark.channel_id)
            .order_by(InventoryPushMark.channel_id)
            .limit(limit)
        )
        current = now_ms()
        return [
            push_job(org_id, channel_id, now_ms=current, debounce_ms=debounce_ms)
            for org_id, channel_id in rows
        ]

    return pending
