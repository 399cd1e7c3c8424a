"""The webhook inbox on the request path: deliveries recorded in groups.

Every delivery must be committed before it is answered (an answered delivery is never retried,
so an uncommitted one would be lost). Committing each on its own costs a transaction per
request: a connection checkout, ``BEGIN``, the insert, ``COMMIT`` (a WAL flush) and a Redis
round trip for its job, which held one API process to a few hundred deliveries per second
(bench/ingest.py). The inbox lets the requests that arrive while a flush is under way share
the next one: one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING id``, one commit, one
``addBulk`` of their jobs. Each request still waits for its own row to be committed before it
is answered; nothing is acknowledged early and nothing waits on a timer (a delivery that finds
the inbox idle is flushed at once, alone).

The unique key (source, channel, external event id) still decides duplicates, in the
database: two deliveries of one webhook in the same flush are two rows of one statement, of
which PostgreSQL and SQLite insert the first and skip the second; in two concurrent flushes
the second waits for the first's commit. When a flush fails on a row (a constraint, a value
the column refuses), its rows are retried one by one so that the failure stays with the
delivery that caused it. Jobs are sent after the commit, as everywhere (``queues.enqueue``): if
Redis is away the rows stay ``ENQUEUED`` and the sweeper sends them later.

The inbox is the edge that commits for this path, like the request dependency is for the
others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeDecorator

from rappit.kit.ids import uuid7
from rappit.kit.types import utcnow
from rappit.models import WebhookEvent, WebhookEventStatus
from rappit.queues.client import QueueClient
from rappit.queues.enqueue import send_buffered
from rappit.webhooks.service import Delivery
from rappit.webhooks.tasks import process_job

logger = logging.getLogger(__name__)


class _JsonText(TypeDecorator[str]):
    """A JSON column's parameter given as JSON text already: the body as it was received and
    validated, stored without decoding and encoding it again (which cost as much as the rest
    of recording it). The column's own type still decides how the database takes it
    (``$n::JSON`` on PostgreSQL, text on SQLite)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


def _insert_statement(insert: Any) -> Any:
    # Built once per dialect; run with a list of rows, SQLAlchemy sends them as multi-row
    # VALUES ("insertmanyvalues") and gathers the RETURNING rows of those inserted.
    return (
        insert(WebhookEvent)
        .values(payload=bindparam("payload", type_=_JsonText()))
        .on_conflict_do_nothing()
        .returning(WebhookEvent.id)
    )


_INSERT = {
    "postgresql": _insert_statement(postgresql.insert),
    "sqlite": _insert_statement(sqlite.insert),
}


@dataclass(frozen=True)
class InboxTarget:
    """Where a delivery belongs: what the inbox needs of the channel (not the ORM row, which
    belongs to a session)."""

    organization_id: Any
    channel_id: Any


@dataclass
class _Pending:
    row: dict[str, Any]
    size: int
    answer: asyncio.Future[bool]


@dataclass
class WebhookInbox:
    """Records deliveries, several per transaction; ``record`` answers True when the delivery
    is new (recorded and enqueued), False for a repeat of one already recorded."""

    engine: AsyncEngine
    queue: QueueClient | None
    # One flush takes at most this many deliveries, or this many payload bytes. The row limit
    # stays under SQLAlchemy's insertmanyvalues page (1,000 rows), so a flush is always one
    # INSERT statement: all of its rows or none.
    max_rows: int = 500
    max_bytes: int = 8 * 1024 * 1024
    # Flushes under way at once: while one commits, the next can insert.
    max_flushes: int = 2
    # INSERT statements run so far (each its own transaction): deliveries ÷ statements is how
    # much the grouping saves.
    statements: int = field(default=0, init=False)
    _pending: list[_Pending] = field(default_factory=list, init=False)
    _flushes: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_bytes < 1 or self.max_flushes < 1:
            raise ValueError("max_rows, max_bytes and max_flushes must be >= 1")
        self._statement = _INSERT[self.engine.dialect.name]
        # SQLite's transactions are begun explicitly (BEGIN IMMEDIATE, rappit.kit.db), so it
        # keeps them; PostgreSQL runs the insert as a statement of its own.
        self._autocommit = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else None
        )

    async def record(self, target: InboxTarget, delivery: Delivery, size: int = 0) -> bool:
        """Wait until the delivery is committed (and its job handed to Redis); ``size`` is
        the raw body's length, which bounds how much one flush carries."""
        if self.queue is None:
            raise RuntimeError("the webhook inbox needs a queue client to hand events to")
        now = utcnow()
        row = {
            "id": uuid7(),
            "organization_id": target.organization_id,
            "source": delivery.source,
            "channel_id": target.channel_id,
            "topic": delivery.topic,
            "external_event_id": delivery.external_event_id,
            "event_id": delivery.event_id,
            "triggered_at": delivery.triggered_at,
            "api_version": delivery.api_version,
            "status": WebhookEventStatus.ENQUEUED,
            "payload": delivery.payload,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(row, size, answer))
        self._start_flushes()
        # Shielded: a client that hangs up does not take the row out of a flush under way;
        # its delivery is recorded all the same (and a retry of it is then a duplicate).
        return await asyncio.shield(answer)

    async def drain(self) -> None:
        """Wait for every flush under way (at shutdown: no request is left unanswered)."""
        while self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)

    # --- flushing ---------------------------------------------------------------------------

    def _start_flushes(self) -> None:
        while self._pending and len(self._flushes) < self.max_flushes:
            task = asyncio.create_task(self._flush(self._take()))
            self._flushes.add(task)
            task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        # What arrived during this flush goes next, as one group.
        self._start_flushes()

    def _take(self) -> list[_Pending]:
        taken, size = 0, 0
        for item in self._pending:
            if taken and (taken >= self.max_rows or size + item.size > self.max_bytes):
                break
            taken += 1
            size += item.size
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        try:
            try:
                inserted = await self._insert([item.row for item in batch])
            except DBAPIError as exc:
                if len(batch) == 1 or exc.connection_invalidated:
                    raise
                # One row may have spoiled the statement for all: find it by trying each.
                await self._one_by_one(batch)
                return
            await self._send_jobs([item.row for item in batch if item.row["id"] in inserted])
            for item in batch:
                _answer(item.answer, item.row["id"] in inserted)
        except BaseException as exc:
            for item in batch:
                _fail(item.answer, exc)
            if not isinstance(exc, Exception):
                raise

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        for item in batch:
            try:
                created = bool(await self._insert([item.row]))
            except Exception as exc:
                _fail(item.answer, exc)
                continue
            if created:
                await self._send_jobs([item.row])
            _answer(item.answer, created)

    async def _insert(self, rows: Sequence[dict[str, Any]]) -> set[Any]:
        self.statements += 1
        if self._autocommit is not None:
            # One statement is its own transaction: atomic, and committed when it returns,
            # without the two extra round trips of BEGIN and COMMIT.
            async with self._autocommit.connect() as connection:
                result = await connection.execute(self._statement, list(rows))
                return set(result.scalars().all())
        async with self.engine.begin() as connection:
            result = await connection.execute(self._statement, list(rows))
            return set(result.scalars().all())

    async def _send_jobs(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows and self.queue is not None:
            # Never raises: a failed send leaves the rows ENQUEUED for the sweeper.
            await send_buffered(
                self.queue, [process_job(row["organization_id"], row["id"]) for row in rows]
            )


def _answer(answer: asyncio.Future[bool], created: bool) -> None:
    if not answer.done():
        answer.set_result(created)


def _fail(answer: asyncio.Future[bool], exc: BaseException) -> None:
    if not answer.done():
        answer.set_exception(exc)
