"""Periodic jobs as BullMQ job schedulers.

A scheduler lives in Redis and produces each period's job exactly once, however many worker or
scheduler processes run; ``install`` is idempotent, so every ``rappit scheduler`` (and
``rappit serve``) may call it at start and again now and then (in case Redis lost its data).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rappit.queues.client import QueueClient
from rappit.queues.jobs import KEEP_COMPLETED_S, KEEP_FAILED_S
from rappit.queues.names import QueueName

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    scheduler_id: str
    queue: QueueName
    name: str
    every_ms: int
    data: dict[str, Any] = field(default_factory=dict)


async def install(client: QueueClient, jobs: Sequence[PeriodicJob]) -> None:
    for job in jobs:
        await client.queue(job.queue).upsertJobScheduler(
            job.scheduler_id,
            {"every": job.every_ms},
            job.name,
            job.data,
            {
                # A periodic job is retried by its next period, not by backoff.
                "attempts": 1,
                "removeOnComplete": {"age": KEEP_COMPLETED_S, "count": 100},
                "removeOnFail": {"age": KEEP_FAILED_S, "count": 100},
            },
        )
    logger.info("job schedulers installed: %s", ", ".join(j.scheduler_id for j in jobs))


async def run(
    client: QueueClient,
    jobs: Sequence[PeriodicJob],
    stop: asyncio.Event,
    *,
    refresh_s: float = 60.0,
) -> None:
    """Install the schedulers, then re-install every ``refresh_s`` until ``stop`` is set.
    Redis being away is logged and tried again at the next refresh."""
    while not stop.is_set():
        try:
            await install(client, jobs)
        except Exception as exc:
            logger.warning("installing job schedulers failed (%s: %s)", type(exc).__name__, exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=refresh_s)
        except TimeoutError:
            continue
