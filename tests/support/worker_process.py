"""A worker in a process of its own, for tests that kill one with SIGKILL.

Usage: python -m tests.support.worker_process REDIS_URL PREFIX MARKER_DIR

Runs the ``channel-sync`` queue with a handler ``slow`` that writes MARKER_DIR/<job id>.started
and then sleeps far longer than any test waits.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext, QueueWorker, WorkerOptions


async def main(redis_url: str, prefix: str, marker_dir: Path) -> None:
    async def slow(context: JobContext) -> None:
        (marker_dir / f"{context.job_id}.started").write_text(str(context.attempt))
        await asyncio.sleep(3600)

    client = QueueClient(redis_url, prefix=prefix, attempts=3, backoff_ms=50)
    worker = QueueWorker(
        QueueName.CHANNEL_SYNC,
        {"slow": slow},
        client,
        WorkerOptions(concurrency=1, lock_duration_ms=2000, stalled_interval_ms=1000),
    )
    worker.start()
    (marker_dir / "ready").write_text("1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
