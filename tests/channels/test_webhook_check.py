"""The periodic webhook check: every active Shopify channel of every organisation gets its
registration job again (a finished one is replaced), page by page; it is scheduled only with a
webhook base URL, and turned off its job asks for nothing."""

from __future__ import annotations

import dataclasses

import pytest

from rappit.channels import tasks as channel_tasks
from rappit.channels.tasks import CHECK_WEBHOOKS_JOB, REGISTER_WEBHOOKS_JOB
from rappit.models import ChannelStatus, ChannelType
from rappit.queues import scheduler
from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from rappit.queues.scheduler import PeriodicJob
from rappit.queues.worker import Handler, JobContext, QueueWorker, WorkerOptions
from rappit.runtime import Runtime
from rappit.wiring import handler_registry, periodic_jobs
from tests.conftest import Tenant
from tests.support.factories import committed_channel
from tests.support.schedules import installed_schedules
from tests.support.waiting import wait_until

BASE = "https://rappit.example.com"
TICK = JobContext(QueueName.CHANNEL_SYNC, CHECK_WEBHOOKS_JOB, "repeat:webhooks-check:1", {}, 1, 1)


def _with_base_url(runtime: Runtime, base_url: str | None) -> Runtime:
    settings = runtime.settings.model_copy(update={"webhook_base_url": base_url})
    return dataclasses.replace(runtime, settings=settings)


def _check(runtime: Runtime) -> Handler:
    """The handler the workers run, as wired."""
    return handler_registry(runtime).for_queue(QueueName.CHANNEL_SYNC)[CHECK_WEBHOOKS_JOB]


async def _asked_for(client: QueueClient) -> dict[str, tuple[str, dict[str, object]]]:
    jobs = await client.queue(QueueName.CHANNEL_SYNC).getJobs(["waiting"])
    return {job.id: (job.name, job.data) for job in jobs if job.name == REGISTER_WEBHOOKS_JOB}


@pytest.mark.parametrize("page", [1000, 1])
async def test_every_active_shopify_channel_of_every_organisation_is_asked_for(
    page: int,
    queue_runtime: Runtime,
    queue_client: QueueClient,
    tenant: Tenant,
    other_tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(channel_tasks, "CHECK_PAGE", page)
    runtime = _with_base_url(queue_runtime, BASE)
    active = await committed_channel(runtime.sessionmaker, tenant.organization_id)
    await committed_channel(
        runtime.sessionmaker, tenant.organization_id, status=ChannelStatus.DISCONNECTED
    )
    await committed_channel(
        runtime.sessionmaker, tenant.organization_id, channel_type=ChannelType.WOOCOMMERCE
    )  # no registration
    elsewhere = await committed_channel(runtime.sessionmaker, other_tenant.organization_id)

    assert await _check(runtime)(TICK) == {"channels": 2}

    assert await _asked_for(queue_client) == {
        f"channel-webhooks.{channel.id}": (
            REGISTER_WEBHOOKS_JOB,
            {"organization_id": str(org), "channel_id": str(channel.id)},
        )
        for org, channel in (
            (tenant.organization_id, active),
            (other_tenant.organization_id, elsewhere),
        )
    }
    # Asked for again while they still wait: still one job each.
    assert await _check(runtime)(TICK) == {"channels": 2}
    assert len(await _asked_for(queue_client)) == 2


async def test_a_registration_that_finished_is_asked_for_again(
    queue_runtime: Runtime, queue_client: QueueClient, tenant: Tenant
) -> None:
    runtime = _with_base_url(queue_runtime, BASE)
    channel = await committed_channel(runtime.sessionmaker, tenant.organization_id)
    job_id = f"channel-webhooks.{channel.id}"
    ran: list[str] = []

    async def register(context: JobContext) -> None:
        ran.append(context.job_id)

    async def finished() -> bool:
        return await queue_client.job_state(QueueName.CHANNEL_SYNC, job_id) == "completed"

    for round_ in (1, 2):
        assert await _check(runtime)(TICK) == {"channels": 1}
        worker = QueueWorker(
            QueueName.CHANNEL_SYNC,
            {REGISTER_WEBHOOKS_JOB: register},
            queue_client,
            WorkerOptions(concurrency=1, lock_duration_ms=5000, stalled_interval_ms=5000),
        )
        worker.start()
        try:
            await wait_until(finished, message=f"registration {round_} completed")
        finally:
            await worker.close(timeout_s=5)
    assert ran == [job_id, job_id]


async def test_scheduled_only_with_a_base_url_and_silent_when_turned_off(
    queue_runtime: Runtime, queue_client: QueueClient, tenant: Tenant
) -> None:
    with_url = _with_base_url(queue_runtime, BASE)
    assert with_url.settings.webhook_check_interval_s == 3600
    jobs = periodic_jobs(with_url.settings)
    assert [j for j in jobs if j.scheduler_id == "channel-webhooks-check"] == [
        PeriodicJob("channel-webhooks-check", QueueName.CHANNEL_SYNC, CHECK_WEBHOOKS_JOB, 3_600_000)
    ]
    await scheduler.install(queue_client, jobs)
    installed = await installed_schedules(queue_client, QueueName.CHANNEL_SYNC)
    assert installed["channel-webhooks-check"] == (CHECK_WEBHOOKS_JOB, 3_600_000)

    no_url = _with_base_url(queue_runtime, None)
    interval_off = with_url.settings.model_copy(update={"webhook_check_interval_s": 0})
    for settings in (no_url.settings, interval_off):
        assert "channel-webhooks-check" not in [j.scheduler_id for j in periodic_jobs(settings)]
    # A schedule installed before it was turned off still fires: its job asks for nothing.
    await committed_channel(queue_runtime.sessionmaker, tenant.organization_id)
    for runtime in (no_url, dataclasses.replace(with_url, settings=interval_off)):
        assert await _check(runtime)(TICK) == {"disabled": True}
    assert await _asked_for(queue_client) == {}
