"""The consumer side: handlers registered per queue and job name, run by BullMQ workers with
lifecycle logging, retries with backoff and a dead-letter copy after the last attempt."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bullmq import Job, Worker
from bullmq.custom_errors import UnrecoverableError

from rappit.queues.client import QueueClient
from rappit.queues.connection import connection_kwargs
from rappit.queues.names import QueueName

logger = logging.getLogger(__name__)


class PermanentJobError(Exception):
    """Retrying cannot help (bad data, a 4xx from a vendor, a row that no longer exists): the
    job fails now and goes to the dead-letter queue without burning its other attempts."""


@dataclass(frozen=True)
class JobContext:
    queue: QueueName
    name: str
    job_id: str
    data: dict[str, Any]
    attempt: int
    max_attempts: int

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[JobContext], Awaitable[object]]


@dataclass
class HandlerRegistry:
    """Which function runs a job, by queue and job name. Domains register here at wiring time
    (``rappit.app`` / ``rappit.cli``); the queue code knows no domain."""

    handlers: dict[QueueName, dict[str, Handler]] = field(default_factory=dict)

    def register(self, queue: QueueName, name: str, handler: Handler) -> None:
        existing = self.handlers.setdefault(queue, {})
        if name in existing and existing[name] is not handler:
            raise ValueError(f"a handler for {queue.value}/{name} is already registered")
        existing[name] = handler

    def for_queue(self, queue: QueueName) -> dict[str, Handler]:
        return dict(self.handlers.get(queue, {}))


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 4
    lock_duration_ms: int = 30_000
    stalled_interval_ms: int = 30_000
    drain_delay_s: int = 1
    reconnect_delay_ms: int = 2000
    # A job whose lock was lost this many times (its worker died) fails instead of looping.
    max_stalled_count: int = 2


class QueueWorker:
    """One BullMQ worker for one queue."""

    def __init__(
        self,
        queue: QueueName,
        handlers: dict[str, Handler],
        client: QueueClient,
        options: WorkerOptions,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.client = client
        self.options = options
        self._worker: Worker | None = None

    def start(self) -> None:
        connection = connection_kwargs(self.client.url)
        self._worker = Worker(
            self.queue.value,
            self._process,
            {
                "connection": connection,
                "prefix": self.client.prefix,
                "concurrency": self.options.concurrency,
                "lockDuration": self.options.lock_duration_ms,
                "stalledInterval": self.options.stalled_interval_ms,
                "maxStalledCount": self.options.max_stalled_count,
                "drainDelay": self.options.drain_delay_s,
                "runRetryDelay": self.options.reconnect_delay_ms,
                "autorun": True,
            },
        )
        self._worker.on("error", self._on_error)
        logger.info(
            "worker started: queue=%s concurrency=%d", self.queue.value, self.options.concurrency
        )

    @property
    def busy(self) -> int:
        return len(self._worker.jobs) if self._worker is not None else 0

    async def close(self, timeout_s: float) -> bool:
        """Stop taking jobs, let in-flight ones finish for up to ``timeout_s``, then cut them
        off (BullMQ gives them to another worker after the lock expires). Returns True when
        everything finished in time."""
        worker, self._worker = self._worker, None
        if worker is None:
            return True
        closing = asyncio.ensure_future(worker.close())
        done, _ = await asyncio.wait({closing}, timeout=timeout_s)
        if done:
            logger.info("worker stopped: queue=%s", self.queue.value)
            return True
        logger.warning(
            "worker on %s still busy after %.0f s; stopping it anyway", self.queue.value, timeout_s
        )
        await worker.close(force=True)
        await asyncio.wait({closing}, timeout=5)
        return False

    def _on_error(self, error: Exception, *_: Any) -> None:
        # Connection losses land here; BullMQ retries on its own after reconnect_delay_ms.
        logger.warning("worker on %s: %s: %s", self.queue.value, type(error).__name__, error)

    async def _process(self, job: Job, _token: str) -> object:
        attempt = int(job.attemptsMade) + 1
        max_attempts = int(job.opts.get("attempts") or 1)
        context = JobContext(
            queue=self.queue,
            name=job.name,
            job_id=str(job.id),
            data=dict(job.data or {}),
            attempt=attempt,
            max_attempts=max_attempts,
        )
        started = time.perf_counter()
        # DEBUG: at INFO, one line per job (done or failed) is the lifecycle; a second line per
        # job cost a sixth of a worker's CPU in bench/queue.py.
        logger.debug(
            "job started: queue=%s name=%s id=%s attempt=%d/%d",
            self.queue.value,
            job.name,
            job.id,
            attempt,
            max_attempts,
        )
        handler = self.handlers.get(job.name)
        try:
            if handler is None:
                raise PermanentJobError(f"no handler for job '{job.name}' on {self.queue.value}")
            result = await handler(context)
        except PermanentJobError as exc:
            self._log_failure(context, exc, started, final=True)
            await self.client.dead_letter(self.queue, job, f"{type(exc).__name__}: {exc}")
            raise UnrecoverableError(str(exc)) from exc
        except Exception as exc:
            final = context.is_last_attempt
            self._log_failure(context, exc, started, final=final)
            if final:
                await self.client.dead_letter(self.queue, job, f"{type(exc).__name__}: {exc}")
            raise
        logger.info(
            "job done: queue=%s name=%s id=%s attempt=%d duration_ms=%.1f",
            self.queue.value,
            job.name,
            job.id,
            attempt,
            (time.perf_counter() - started) * 1000,
        )
        return result

    def _log_failure(
        self, context: JobContext, error: BaseException, started: float, *, final: bool
    ) -> None:
        logger.warning(
            "job failed: queue=%s name=%s id=%s attempt=%d/%d duration_ms=%.1f final=%s "
            "error=%s: %s",
            context.queue.value,
            context.name,
            context.job_id,
            context.attempt,
            context.max_attempts,
            (time.perf_counter() - started) * 1000,
            final,
            type(error).__name__,
            error,
        )


class WorkerManager:
    """Starts one worker per queue and stops them all together."""

    def __init__(
        self,
        client: QueueClient,
        registry: HandlerRegistry,
        queues: list[QueueName],
        options: dict[QueueName, WorkerOptions],
    ) -> None:
        self.workers = [
            QueueWorker(queue, registry.for_queue(queue), client, options[queue])
            for queue in queues
        ]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    async def stop(self, timeout_s: float) -> bool:
        results = await asyncio.gather(*(w.close(timeout_s) for w in self.workers))
        return all(results)
