"""Reconciliation on a schedule, and the drift it last found.

Webhooks get lost (Shopify gives up after 8 retries over 4 hours; WooCommerce never retries), so
every ``RAPPIT_RECONCILE_INTERVAL_S`` a periodic job starts one ``reconcile`` run per active
channel whose type has a reconciliation puller, across every organisation. Each run is an
ordinary sync run (a row first, then its job, resumable, swept when its job is lost); a channel
whose reconciliation is still under way keeps that one (``start_run`` returns it), so a slow
run is never doubled. What the puller compares and heals is the integration's business.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.kit.db import unit_of_work
from rappit.kit.errors import InvalidInput, NotFound
from rappit.models import Channel, ChannelStatus, SyncResource, SyncRun, SyncRunStatus
from rappit.queues.worker import Handler, JobContext
from rappit.sync.service import SyncRegistry, start_run

logger = logging.getLogger(__name__)


def reconcile_cursor(window_hours: int) -> dict[str, Any]:
    """The starting cursor of a reconciliation: the window it re-reads is fixed on the run."""
    return {"window_hours": window_hours}


@dataclass
class ReconcileStarts:
    started: int = 0
    # Channels whose previous reconciliation is still pending or running.
    already_running: int = 0
    # Channels deleted or disconnected between the listing and the start.
    skipped: int = 0


async def start_reconciliations(
    sessionmaker: async_sessionmaker[AsyncSession], registry: SyncRegistry, *, window_hours: int
) -> ReconcileStarts:
    starts = ReconcileStarts()
    channel_types = sorted(registry.channel_types(SyncResource.RECONCILE))
    if not channel_types:
        return starts
    async with sessionmaker() as session:
        # Deployment-wide on purpose, like the sweeper: one schedule serves every organisation.
        channels = (
            await session.execute(
                select(Channel.organization_id, Channel.id)
                .where(Channel.status == ChannelStatus.ACTIVE, Channel.type.in_(channel_types))
                .order_by(Channel.id)
            )
        ).all()
    for organization_id, channel_id in channels:
        # One transaction per channel: one that cannot start does not hold back the others.
        try:
            async with unit_of_work(sessionmaker) as session:
                _, created = await start_run(
                    session,
                    organization_id,
                    channel_id,
                    SyncResource.RECONCILE,
                    cursor=reconcile_cursor(window_hours),
                )
        except (NotFound, InvalidInput):
            starts.skipped += 1
            continue
        if created:
            starts.started += 1
        else:
            starts.already_running += 1
    logger.info(
        "reconciliation: %d run(s) started, %d already under way, %d channel(s) skipped",
        starts.started,
        starts.already_running,
        starts.skipped,
    )
    return starts


def reconcile_handler(
    sessionmaker: async_sessionmaker[AsyncSession],
    registry: SyncRegistry,
    *,
    interval_s: int,
    window_hours: int,
) -> Handler:
    async def handle(_: JobContext) -> dict[str, Any]:
        if interval_s == 0:
            # Turned off: a schedule installed in Redis before that still fires, and starts
            # nothing.
            return {"disabled": True}
        starts = await start_reconciliations(sessionmaker, registry, window_hours=window_hours)
        return asdict(starts)

    return handle


async def latest_reconciliation(
    session: AsyncSession, organization_id: uuid.UUID, channel_id: uuid.UUID
) -> SyncRun | None:
    """The channel's most recently finished completed reconciliation, if any."""
    run: SyncRun | None = await session.scalar(
        select(SyncRun)
        .where(
            SyncRun.organization_id == organization_id,
            SyncRun.channel_id == channel_id,
            SyncRun.resource == SyncResource.RECONCILE,
            SyncRun.status == SyncRunStatus.COMPLETED,
        )
        .order_by(SyncRun.finished_at.desc(), SyncRun.id.desc())
        .limit(1)
    )
    return run
