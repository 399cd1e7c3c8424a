"""The queues as seen by an operator: job counts, and the organisation's dead letters to look
at, replay or purge. Admin keys only.

Counts are aggregates over every organisation (no tenant data). Dead letters carry other
organisations' jobs, so each call filters them by the ``organization_id`` in the job's data and
treats anyone else's entry as not existing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rappit.auth.dependencies import AdminAuth
from rappit.kit.errors import Conflict, InvalidInput, NotFound, RappitError
from rappit.kit.pagination import Page
from rappit.queues.client import DeadLetter, QueueClient
from rappit.queues.names import ALL_QUEUES, WORK_QUEUES
from rappit.queues.schemas import DeadLetterRead, PurgeRead, QueueCountsRead, ReplayRead
from rappit.runtime import RuntimeDep

# An answer within this long, or the queue counts as unavailable (a request must not hang on a
# Redis that is away).
QUEUE_TIMEOUT_S = 5.0

router = APIRouter(tags=["queues"])


class QueueUnavailable(RappitError):
    status_code = 503
    code = "queue_unavailable"


def get_queue(runtime: RuntimeDep) -> QueueClient:
    if runtime.queue is None:
        raise QueueUnavailable("this process has no queue configured")
    return runtime.queue


QueueDep = Annotated[QueueClient, Depends(get_queue)]


@asynccontextmanager
async def _reaching_redis() -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(QUEUE_TIMEOUT_S):
            yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:  # TimeoutError included
        raise QueueUnavailable(f"the queue's Redis is unreachable ({type(exc).__name__})") from exc


@router.get("/queues")
async def list_queues(auth: AdminAuth, queue: QueueDep) -> Page[QueueCountsRead]:
    async with _reaching_redis():
        counts = await queue.counts()
    items = [
        QueueCountsRead.from_counts(name.value, counts.get(name.value, {})) for name in ALL_QUEUES
    ]
    return Page(items=items, next_cursor=None)


# --- dead letters -------------------------------------------------------------------------------


def _position(letter: DeadLetter) -> tuple[int, str]:
    return letter.failed_at, letter.id


def _encode_cursor(letter: DeadLetter) -> str:
    raw = json.dumps([letter.failed_at, letter.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        failed_at, letter_id = json.loads(raw)
        if not isinstance(failed_at, int) or not isinstance(letter_id, str):
            raise ValueError("not a dead-letter position")
        return failed_at, letter_id
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput("cursor is not valid; pass the next_cursor of a previous page") from exc


async def _own_letters(queue: QueueClient, organization_id: str) -> list[DeadLetter]:
    letters = await queue.dead_letters(organization_id=organization_id, limit=10**9)
    return sorted(letters, key=_position)


async def _own_letter(queue: QueueClient, organization_id: str, letter_id: str) -> DeadLetter:
    letter = await queue.get_dead_letter(letter_id)
    if letter is None or letter.organization_id != organization_id:
        raise NotFound("dead letter not found")
    return letter


@router.get("/dead-letters")
async def list_dead_letters(
    auth: AdminAuth,
    queue: QueueDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[DeadLetterRead]:
    """The organisation's jobs that used up their attempts, oldest failure first."""
    after = _decode_cursor(cursor) if cursor is not None else None
    async with _reaching_redis():
        letters = await _own_letters(queue, str(auth.organization_id))
    if after is not None:
        letters = [letter for letter in letters if _position(letter) > after]
    page, rest = letters[:limit], letters[limit:]
    return Page(
        items=[DeadLetterRead.from_letter(letter) for letter in page],
        next_cursor=_encode_cursor(page[-1]) if rest else None,
    )


@router.post("/dead-letters/{letter_id}/replay", status_code=202)
async def replay_dead_letter(letter_id: str, auth: AdminAuth, queue: QueueDep) -> ReplayRead:
    """Put the job back on its queue under its original id; the dead-letter entry goes."""
    async with _reaching_redis():
        letter = await _own_letter(queue, str(auth.organization_id), letter_id)
        if letter.queue not in {name.value for name in WORK_QUEUES}:
            raise Conflict(f"dead letter names an unknown queue '{letter.queue}'")
        await queue.replay(letter)
    return ReplayRead(queue=letter.queue, job_id=letter.job_id)


@router.delete("/dead-letters")
async def purge_dead_letters(auth: AdminAuth, queue: QueueDep) -> PurgeRead:
    """Drop every dead letter of the organisation (other organisations' stay)."""
    async with _reaching_redis():
        purged = await queue.purge_dead_letters(organization_id=str(auth.organization_id))
    return PurgeRead(purged=purged)
