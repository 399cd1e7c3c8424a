"""Failures around the workers: a worker killed mid-job, Redis going away and coming back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from rappit.queues.client import QueueClient
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext, QueueWorker, WorkerOptions
from tests.support.services import ThrowawayRedis
from tests.support.waiting import wait_until

QUEUE = QueueName.CHANNEL_SYNC
FAST = WorkerOptions(
    concurrency=2, lock_duration_ms=2000, stalled_interval_ms=1000, reconnect_delay_ms=200
)


async def test_a_job_of_a_killed_worker_completes_on_another(
    queue_client: QueueClient, redis_url: str, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.worker_process", redis_url, queue_client.prefix,
         str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    rescuer: QueueWorker | None = None
    try:
        await wait_until(lambda: (tmp_path / "ready").exists(), message="worker process ready")
        await queue_client.add(JobRequest(QUEUE, "slow", "slow.1"))
        await wait_until(
            lambda: (tmp_path / "slow.1.started").exists(), message="job started in subprocess"
        )
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL

        finished: list[int] = []

        async def quick(context: JobContext) -> None:
            finished.append(context.attempt)

        rescuer = QueueWorker(QUEUE, {"slow": quick}, queue_client, FAST)
        rescuer.start()
        await wait_until(
            lambda: _completed(queue_client, "slow.1"), timeout=30, message="job rescued"
        )
        # Run once to completion by the second worker; the killed attempt never finished.
        assert finished == [1]
    finally:
        if process.poll() is None:
            process.kill()
        if rescuer is not None:
            await rescuer.close(timeout_s=5)


async def _completed(client: QueueClient, job_id: str) -> bool:
    return await client.job_state(QUEUE, job_id) == "completed"


async def test_workers_reconnect_after_redis_restarts(tmp_path: Path) -> None:
    server = ThrowawayRedis(tmp_path).start(appendonly=True)
    client = QueueClient(server.url, prefix="restart", attempts=3, backoff_ms=50)
    seen: list[str] = []

    async def handle(context: JobContext) -> None:
        seen.append(context.job_id)

    worker = QueueWorker(QUEUE, {"work": handle}, client, FAST)
    worker.start()
    try:
        await client.add(JobRequest(QUEUE, "work", "before"))
        await wait_until(lambda: seen == ["before"], message="job before the restart")

        server.stop()
        await asyncio.sleep(1.0)  # the worker loses its connections and keeps retrying
        server.start(appendonly=True)

        await wait_until(_ping(client), timeout=20, message="client reconnects")
        await client.add(JobRequest(QUEUE, "work", "after"))
        await wait_until(lambda: seen == ["before", "after"], timeout=30, message="job after")
    finally:
        await worker.close(timeout_s=5)
        await client.close()
        server.stop()


def _ping(client: QueueClient):  # type: ignore[no-untyped-def]
    async def ping() -> bool:
        try:
            return await client.ping()
        except Exception:
            return False

    return ping
