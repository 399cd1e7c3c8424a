"""The sweeper: rows that stand for pending work (a webhook event still ``ENQUEUED``, later sync
runs, fulfilments and shipments) whose job never reached Redis, or was lost with it, are sent
again. Deterministic job ids make a re-send of a job that does exist a no-op."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.kit.types import utcnow
from rappit.queues.client import QueueClient
from rappit.queues.jobs import JobRequest
from rappit.queues.worker import Handler, JobContext

logger = logging.getLogger(__name__)

SWEEP_BATCH = 1000

# Finds the jobs of rows left pending since before ``older_than`` (at most ``limit``).
PendingSource = Callable[[AsyncSession, datetime, int], Awaitable[list[JobRequest]]]


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: QueueClient,
    source: PendingSource,
    *,
    older_than_s: int,
) -> int:
    async with sessionmaker() as session:
        requests = await source(session, utcnow() - timedelta(seconds=older_than_s), SWEEP_BATCH)
    if requests:
        await client.add_many(requests)
        logger.info("sweeper re-sent %d pending job(s)", len(requests))
    return len(requests)


def sweep_handler(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: QueueClient,
    source: PendingSource,
    *,
    older_than_s: int,
) -> Handler:
    async def handle(_: JobContext) -> dict[str, int]:
        resent = await sweep(sessionmaker, client, source, older_than_s=older_than_s)
        return {"resent": resent}

    return handle
