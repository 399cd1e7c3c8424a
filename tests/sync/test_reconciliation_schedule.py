"""The reconciliation schedule: its periodic job starts one reconcile run per active channel
that has a reconciliation puller, in every organisation, never a second while one is under way;
turned off, it is not installed and its job starts nothing."""

from __future__ import annotations

from sqlalchemy import select

from rappit.kit.db import unit_of_work
from rappit.models import ChannelStatus, ChannelType, SyncResource, SyncRun
from rappit.queues import scheduler
from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from rappit.queues.scheduler import PeriodicJob
from rappit.queues.worker import JobContext
from rappit.runtime import Runtime
from rappit.sync.reconciliation import reconcile_handler
from rappit.sync.tasks import RECONCILE_JOB
from rappit.wiring import handler_registry, periodic_jobs, sync_pullers
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import committed_channel
from tests.support.schedules import installed_schedules

TICK = JobContext(QueueName.SHOPIFY_SYNC, RECONCILE_JOB, "repeat:sync-reconcile:1", {}, 1, 1)


async def _reconcile_runs(database: TestDatabase) -> list[SyncRun]:
    async with database.sessionmaker() as session:
        rows = await session.scalars(
            select(SyncRun).where(SyncRun.resource == SyncResource.RECONCILE).order_by(SyncRun.id)
        )
        return list(rows.all())


async def test_each_tick_starts_one_run_per_active_channel_and_never_a_second(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant, other_tenant: Tenant
) -> None:
    active = await committed_channel(queue_runtime.sessionmaker, tenant.organization_id)
    await committed_channel(
        queue_runtime.sessionmaker, tenant.organization_id, status=ChannelStatus.DISCONNECTED
    )
    # No reconciliation puller for this type: nothing to start.
    await committed_channel(
        queue_runtime.sessionmaker, tenant.organization_id, channel_type=ChannelType.WOOCOMMERCE
    )
    elsewhere = await committed_channel(queue_runtime.sessionmaker, other_tenant.organization_id)
    # The handler the workers run, as wired.
    tick = handler_registry(queue_runtime).for_queue(QueueName.SHOPIFY_SYNC)[RECONCILE_JOB]

    assert await tick(TICK) == {"started": 2, "already_running": 0, "skipped": 0}

    runs = await _reconcile_runs(database)
    assert sorted((r.organization_id, r.channel_id) for r in runs) == sorted(
        [
            (tenant.organization_id, active.id),
            (other_tenant.organization_id, elsewhere.id),
        ]
    )
    window = queue_runtime.settings.reconcile_window_hours
    assert [(r.status, r.cursor) for r in runs] == [("PENDING", {"window_hours": window})] * 2
    assert queue_runtime.queue is not None
    for run in runs:
        state = await queue_runtime.queue.job_state(QueueName.SHOPIFY_SYNC, f"sync-run.{run.id}")
        assert state == "waiting"

    # The next tick comes while both are still under way.
    assert await tick(TICK) == {"started": 0, "already_running": 2, "skipped": 0}
    assert [r.id for r in await _reconcile_runs(database)] == [r.id for r in runs]

    # Once one has finished, its channel gets a new one; the other is still under way.
    async with unit_of_work(database.sessionmaker) as session:
        finished = await session.get_one(SyncRun, runs[0].id)
        finished.status = "COMPLETED"
    assert await tick(TICK) == {"started": 1, "already_running": 1, "skipped": 0}
    after = await _reconcile_runs(database)
    assert len(after) == 3
    assert after[-1].channel_id == runs[0].channel_id


async def test_the_schedule_is_installed_every_interval_and_not_at_all_when_turned_off(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant, queue_client: QueueClient
) -> None:
    settings = queue_runtime.settings
    assert settings.reconcile_interval_s == 3600
    jobs = periodic_jobs(settings)
    assert [j for j in jobs if j.scheduler_id == "sync-reconcile"] == [
        PeriodicJob("sync-reconcile", QueueName.SHOPIFY_SYNC, RECONCILE_JOB, 3_600_000)
    ]
    await scheduler.install(queue_client, jobs)
    installed = await installed_schedules(queue_client, QueueName.SHOPIFY_SYNC)
    assert installed["sync-reconcile"] == (RECONCILE_JOB, 3_600_000)

    off = settings.model_copy(update={"reconcile_interval_s": 0})
    assert "sync-reconcile" not in [j.scheduler_id for j in periodic_jobs(off)]
    # A schedule installed before it was turned off still fires: its job starts nothing.
    await committed_channel(queue_runtime.sessionmaker, tenant.organization_id)
    handler = reconcile_handler(
        queue_runtime.sessionmaker, sync_pullers(queue_runtime), interval_s=0, window_hours=24
    )
    assert await handler(TICK) == {"disabled": True}
    assert await _reconcile_runs(database) == []
