"""The producer side: adding jobs, counting them, and the dead-letter queue.

Nothing outside ``rappit.queues`` imports ``bullmq``; this class is what the rest of the code
sees of it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from bullmq import Job, Queue

from rappit.queues.connection import create_client
from rappit.queues.jobs import JobRequest, job_options
from rappit.queues.names import ALL_QUEUES, QueueName

logger = logging.getLogger(__name__)

JOB_STATES = ("waiting", "active", "delayed", "completed", "failed")


@dataclass(frozen=True)
class DeadLetter:
    """A copy of a job that used up its attempts, kept for a person to look at and replay."""

    id: str
    queue: str
    name: str
    job_id: str
    data: dict[str, Any]
    error: str
    attempts: int
    failed_at: int
    created_at: int

    @property
    def organization_id(self) -> str | None:
        value = self.data.get("organization_id")
        return str(value) if value is not None else None


class QueueClient:
    def __init__(
        self, url: str, *, prefix: str = "bull", attempts: int = 5, backoff_ms: int = 1000
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.attempts = attempts
        self.backoff_ms = backoff_ms
        self.redis: aioredis.Redis = create_client(url)
        self._queues: dict[QueueName, Queue] = {}

    def queue(self, name: QueueName) -> Queue:
        if name not in self._queues:
            self._queues[name] = Queue(name, {"connection": self.redis, "prefix": self.prefix})
        return self._queues[name]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def add(self, request: JobRequest) -> None:
        if request.replace:
            await self._remove_finished(request)
        await self.queue(request.queue).add(
            request.name,
            request.data,
            job_options(request, attempts=self.attempts, backoff_ms=self.backoff_ms),
        )

    async def add_many(self, requests: Sequence[JobRequest]) -> None:
        by_queue: dict[QueueName, list[dict[str, Any]]] = defaultdict(list)
        for request in requests:
            if request.replace:
                await self._remove_finished(request)
            by_queue[request.queue].append(
                {
                    "name": request.name,
                    "data": request.data,
                    "opts": job_options(
                        request, attempts=self.attempts, backoff_ms=self.backoff_ms
                    ),
                }
            )
        for name, jobs in by_queue.items():
            await self.queue(name).addBulk(jobs)

    async def _remove_finished(self, request: JobRequest) -> None:
        # Only a completed or failed job is removed: a waiting, delayed or running one already
        # stands for this work.
        state = await self.job_state(request.queue, request.job_id)
        if state in ("completed", "failed"):
            await self.queue(request.queue).remove(request.job_id)

    async def get_job(self, queue: QueueName, job_id: str) -> Job | None:
        job: Job | None = await self.queue(queue).getJob(job_id)
        return job

    async def job_state(self, queue: QueueName, job_id: str) -> str:
        state: str = await self.queue(queue).getJobState(job_id)
        return state

    async def counts(self) -> dict[str, dict[str, int]]:
        """Jobs per state for every queue (``waiting`` includes paused and prioritized)."""
        result: dict[str, dict[str, int]] = {}
        for name in ALL_QUEUES:
            raw = await self.queue(name).getJobCounts(
                "wait", "paused", "prioritized", "active", "delayed", "completed", "failed"
            )
            result[name.value] = {
                "waiting": int(raw.get("wait", 0))
                + int(raw.get("paused", 0))
                + int(raw.get("prioritized", 0)),
                "active": int(raw.get("active", 0)),
                "delayed": int(raw.get("delayed", 0)),
                "completed": int(raw.get("completed", 0)),
                "failed": int(raw.get("failed", 0)),
            }
        return result

    # --- dead letters ---------------------------------------------------------------------

    async def dead_letter(self, queue: QueueName, job: Job, error: str) -> None:
        """Keep a copy of a job that will not be tried again. Its id is derived from the
        original's, so a repeated copy (a retried hand-off) stays one entry."""
        copy = {
            "queue": queue.value,
            "name": job.name,
            "job_id": str(job.id),
            "data": job.data,
            "error": error[:4000],
            "attempts": int(job.attemptsMade) + 1,
            "failed_at": int(time.time() * 1000),
            "created_at": int(job.timestamp or 0),
        }
        await self.queue(QueueName.DEAD_LETTER).add(
            job.name,
            copy,
            {"jobId": f"{queue.value}.{job.id}", "removeOnComplete": True},
        )
        logger.warning(
            "job moved to dead-letter: queue=%s name=%s id=%s error=%s",
            queue.value,
            job.name,
            job.id,
            error[:200],
        )

    async def dead_letters(
        self, *, organization_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        jobs: list[Job] = await self.queue(QueueName.DEAD_LETTER).getJobs(
            ["waiting", "paused"], 0, -1, True
        )
        letters = [self._to_letter(job) for job in jobs if job is not None]
        if organization_id is not None:
            letters = [d for d in letters if d.organization_id == organization_id]
        return letters[:limit]

    async def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        job = await self.get_job(QueueName.DEAD_LETTER, letter_id)
        return self._to_letter(job) if job is not None else None

    async def replay(self, letter: DeadLetter) -> None:
        """Put the job back on its queue under its own id (the failed original is removed
        first, since BullMQ ignores an add whose id it still holds), then drop the copy."""
        queue = QueueName(letter.queue)
        await self.queue(queue).remove(letter.job_id)
        await self.add(JobRequest(queue, letter.name, letter.job_id, letter.data))
        await self.queue(QueueName.DEAD_LETTER).remove(letter.id)

    async def purge_dead_letters(self, *, organization_id: str | None = None) -> int:
        letters = await self.dead_letters(organization_id=organization_id, limit=10**9)
        for letter in letters:
            await self.queue(QueueName.DEAD_LETTER).remove(letter.id)
        return len(letters)

    @staticmethod
    def _to_letter(job: Job) -> DeadLetter:
        data: dict[str, Any] = job.data or {}
        return DeadLetter(
            id=str(job.id),
            queue=str(data.get("queue", "")),
            name=str(data.get("name", job.name)),
            job_id=str(data.get("job_id", "")),
            data=dict(data.get("data") or {}),
            error=str(data.get("error", "")),
            attempts=int(data.get("attempts", 0)),
            failed_at=int(data.get("failed_at", 0)),
            created_at=int(data.get("created_at", 0)),
        )

    async def close(self) -> None:
        # Every Queue shares self.redis, so closing it once closes them all.
        self._queues.clear()
        await self.redis.aclose()
