"""Enqueue after commit.

Jobs asked for inside a unit of work are buffered on its session and sent to Redis only once
the transaction has committed; a rollback drops them. A send that fails (Redis away, the
process dying right after the commit) loses nothing: the work is a row in a pending state first,
and the sweeper sends its job again (same deterministic id, so a duplicate is harmless).
"""

from __future__ import annotations

import logging
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.db import after_commit
from rappit.queues.client import QueueClient
from rappit.queues.jobs import JobRequest

logger = logging.getLogger(__name__)

SESSION_QUEUE_KEY = "queue_client"
_BUFFER_KEY = "queued_jobs"


class NoQueueConfigured(RuntimeError):
    pass


def enqueue(session: AsyncSession, request: JobRequest) -> None:
    client = session.info.get(SESSION_QUEUE_KEY)
    if not isinstance(client, QueueClient):
        raise NoQueueConfigured(
            "this session has no queue client; open it from the runtime's sessionmaker"
        )
    buffer: list[JobRequest] | None = session.info.get(_BUFFER_KEY)
    if buffer is None:
        buffer = session.info[_BUFFER_KEY] = []
        after_commit(session, partial(send_buffered, client, buffer))
    buffer.append(request)


async def send_buffered(client: QueueClient, requests: list[JobRequest]) -> None:
    if not requests:
        return
    try:
        if len(requests) == 1:
            await client.add(requests[0])  # a single add is half the work of a bulk of one
        else:
            await client.add_many(requests)
    except Exception as exc:  # Redis down or unreachable: the sweeper re-sends later
        logger.warning(
            "%d job(s) not sent (%s: %s); their rows stay pending and the sweeper re-sends them",
            len(requests),
            type(exc).__name__,
            exc,
        )
