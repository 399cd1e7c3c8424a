"""The embedded Redis of the default install, and periodic jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rappit.queues import scheduler
from rappit.queues.client import QueueClient
from rappit.queues.embedded import EmbeddedRedis
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName
from rappit.queues.scheduler import PeriodicJob
from rappit.queues.worker import JobContext, QueueWorker, WorkerOptions
from tests.support.waiting import wait_until

QUEUE = QueueName.SHIPMENT_TRACKING


async def test_embedded_redis_keeps_queued_jobs_across_a_restart(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    url = first.ensure_running()
    assert first.owned
    assert url == f"unix://{tmp_path.resolve()}/redis/redis.sock"
    client = QueueClient(url)
    await client.add(JobRequest(QUEUE, "poll", "poll.1", {"n": 1}))
    await client.close()
    first.stop()
    assert not first.is_running()

    second = EmbeddedRedis(tmp_path)
    second.ensure_running()
    try:
        client = QueueClient(second.url)
        job = await client.get_job(QUEUE, "poll.1")
        assert job is not None
        assert job.data == {"n": 1}
        assert await client.job_state(QUEUE, "poll.1") == "waiting"
        await client.close()
    finally:
        second.stop()


async def test_a_second_command_uses_the_running_embedded_redis(tmp_path: Path) -> None:
    owner = EmbeddedRedis(tmp_path)
    owner.ensure_running()
    try:
        guest = EmbeddedRedis(tmp_path)
        assert guest.ensure_running() == owner.url
        assert not guest.owned
        guest.stop()  # not its server: does nothing
        assert owner.is_running()
    finally:
        owner.stop()


async def test_installing_schedulers_twice_keeps_one(queue_client: QueueClient) -> None:
    jobs = [PeriodicJob("tick", QUEUE, "tick", 60_000)]
    await scheduler.install(queue_client, jobs)
    await scheduler.install(queue_client, jobs)
    assert await queue_client.queue(QUEUE).getJobSchedulersCount() == 1
    # One next iteration is waiting for its time, not two.
    assert (await queue_client.counts())[QUEUE.value]["delayed"] + (await queue_client.counts())[
        QUEUE.value
    ]["waiting"] == 1


async def test_a_periodic_job_runs_once_per_period_with_two_workers(
    queue_client: QueueClient,
) -> None:
    ticks: list[str] = []

    async def tick(context: JobContext) -> None:
        ticks.append(context.job_id)

    options = WorkerOptions(concurrency=2, lock_duration_ms=2000, stalled_interval_ms=1000)
    workers = [QueueWorker(QUEUE, {"tick": tick}, queue_client, options) for _ in range(2)]
    for worker in workers:
        worker.start()
    stop = asyncio.Event()
    # Two scheduler processes' worth of installers racing each other.
    installers = [
        asyncio.create_task(
            scheduler.run(
                queue_client, [PeriodicJob("tick", QUEUE, "tick", 300)], stop, refresh_s=0.1
            )
        )
        for _ in range(2)
    ]
    try:
        await wait_until(lambda: len(ticks) >= 4, timeout=20, message="four periods")
    finally:
        stop.set()
        await asyncio.gather(*installers)
        for worker in workers:
            await worker.close(timeout_s=5)
    # Each period's job has its own id and ran exactly once.
    assert len(ticks) == len(set(ticks))
