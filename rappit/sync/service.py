"""Sync runs: pulls from a channel that survive crashes.

A run is a row first (``PENDING``), then a job. The puller applies one page per unit of work and
saves its cursor and counts in that same transaction, so after a crash the next attempt goes on
from the last committed page: nothing is skipped, nothing is applied twice. What a run does per
channel type and resource is plugged in (``SyncRegistry``); this module knows no vendor.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.kit.db import unit_of_work
from rappit.kit.errors import InvalidInput, NotFound
from rappit.models import Channel, ChannelStatus, SyncResource, SyncRun, SyncRunStatus
from rappit.queues.enqueue import enqueue
from rappit.sync.tasks import run_job

ACTIVE = (SyncRunStatus.PENDING, SyncRunStatus.RUNNING)


@dataclass
class SyncProgress:
    """What a puller reports after each page, saved with the page's data."""

    cursor: dict[str, Any]
    counts: dict[str, int]
    total: int | None = None
    drift: dict[str, Any] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)


class SyncContext:
    """Handed to a puller: the run, its channel, and a way to apply a page and save progress in
    one transaction."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        run: SyncRun,
        channel: Channel,
        on_progress: Callable[[SyncContext], None] | None = None,
    ) -> None:
        self.on_progress = on_progress
        self.sessionmaker = sessionmaker
        self.run_id = run.id
        self.organization_id = run.organization_id
        self.channel = channel
        self.resource = SyncResource(run.resource)
        self.cursor: dict[str, Any] = dict(run.cursor or {})
        self.counts: dict[str, int] = dict(run.counts or {})
        self.drift: dict[str, Any] = dict(run.drift or {})
        self.problems: list[dict[str, Any]] = list(run.problems or [])
        self.total: int | None = run.total

    def count(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def problem(self, kind: str, **details: Any) -> None:
        self.problems.append({"kind": kind, **details})

    async def commit_page(
        self,
        apply: Callable[[AsyncSession], Awaitable[None]],
        cursor: dict[str, Any],
    ) -> None:
        """Apply one page and move the cursor past it, atomically."""
        async with unit_of_work(self.sessionmaker) as session:
            await apply(session)
            run = await session.get_one(SyncRun, self.run_id, with_for_update=True)
            self.cursor = cursor
            run.cursor = dict(cursor)
            run.counts = dict(self.counts)
            run.drift = dict(self.drift)
            run.problems = list(self.problems)
            run.total = self.total
        if self.on_progress is not None:
            self.on_progress(self)


Puller = Callable[[SyncContext], Awaitable[None]]


@dataclass
class SyncRegistry:
    pullers: dict[tuple[str, SyncResource], Puller] = field(default_factory=dict)

    def register(self, channel_type: str, resource: SyncResource, puller: Puller) -> None:
        self.pullers[(channel_type, resource)] = puller

    def get(self, channel_type: str, resource: SyncResource) -> Puller | None:
        return self.pullers.get((channel_type, resource))

    def channel_types(self, resource: SyncResource) -> set[str]:
        """The channel types that have a puller for ``resource``."""
        return {channel_type for channel_type, pulled in self.pullers if pulled == resource}


async def start_run(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    resource: SyncResource,
    *,
    cursor: dict[str, Any] | None = None,
    send_job: bool = True,
) -> tuple[SyncRun, bool]:
    """Start a run unless one for the same channel and resource is already under way (then that
    one is returned, with False)."""
    channel = await session.scalar(
        select(Channel)
        .where(Channel.organization_id == organization_id, Channel.id == channel_id)
        # Serialises starts for one channel: two requests cannot both see "none running".
        .with_for_update()
    )
    if channel is None:
        raise NotFound(f"channel '{channel_id}' does not exist")
    if channel.status != ChannelStatus.ACTIVE:
        raise InvalidInput(f"channel '{channel_id}' is {channel.status}; it cannot be synced")
    running = await session.scalar(
        select(SyncRun).where(
            SyncRun.organization_id == organization_id,
            SyncRun.channel_id == channel.id,
            SyncRun.resource == resource,
            SyncRun.status.in_(ACTIVE),
        )
    )
    if running is not None:
        return running, False
    run = SyncRun(
        organization_id=organization_id,
        channel_id=channel.id,
        resource=resource,
        status=SyncRunStatus.PENDING,
        cursor=cursor or {},
        counts={},
        drift={},
        problems=[],
        attempts=0,
    )
    session.add(run)
    await session.flush()
    if send_job:
        enqueue(session, run_job(channel.type, organization_id, run.id))
    return run, True


async def get_run(session: AsyncSession, organization_id: uuid.UUID, run_id: uuid.UUID) -> SyncRun:
    run = await session.scalar(
        select(SyncRun).where(SyncRun.organization_id == organization_id, SyncRun.id == run_id)
    )
    if run is None:
        raise NotFound("sync run not found")
    return run
