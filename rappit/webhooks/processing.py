"""Processing one webhook event in a worker.

``ENQUEUED → PROCESSING → COMPLETED | SKIPPED``, or ``FAILED`` after the last attempt (the
error stays on the row for a person to read, and the event can be replayed). The marking of
``PROCESSING`` commits on its own, so a crash leaves a visible trace; the work itself is one unit
of work, so a crash mid-way leaves nothing half-applied, and running it again is safe (order
upserts and reservation reconciliation are idempotent).

Vendors plug in per (source, topic); this module knows no vendor.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.kit.db import unit_of_work
from rappit.kit.types import utcnow
from rappit.models import Channel, WebhookEvent, WebhookEventStatus
from rappit.models.base import lock_tenant_row
from rappit.queues.worker import Handler, JobContext, PermanentJobError

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 4000


class UnprocessablePayload(Exception):
    """The payload can never be processed as it is (missing ids, bad values): no retry."""


@dataclass(frozen=True)
class TopicResult:
    status: WebhookEventStatus = WebhookEventStatus.COMPLETED
    # Why an event was skipped, or what was only recorded.
    note: str | None = None
    # The channel's id of the resource (an order id): indexed for redaction and look-ups.
    resource_id: str | None = None


TopicHandler = Callable[[AsyncSession, Channel, WebhookEvent], Awaitable[TopicResult]]


@dataclass
class TopicRegistry:
    handlers: dict[tuple[str, str], TopicHandler] = field(default_factory=dict)

    def register(self, source: str, topic: str, handler: TopicHandler) -> None:
        self.handlers[(source, topic)] = handler

    def get(self, source: str, topic: str) -> TopicHandler | None:
        return self.handlers.get((source, topic))


def process_event_handler(
    sessionmaker: async_sessionmaker[AsyncSession], topics: TopicRegistry
) -> Handler:
    async def handle(context: JobContext) -> dict[str, str]:
        try:
            organization_id = uuid.UUID(str(context.data["organization_id"]))
            event_id = uuid.UUID(str(context.data["event_id"]))
        except (KeyError, ValueError) as exc:
            raise PermanentJobError(f"job data is not a webhook event reference: {exc}") from exc

        async with unit_of_work(sessionmaker) as session:
            event = await lock_tenant_row(session, WebhookEvent, organization_id, event_id)
            if event is None:
                raise PermanentJobError(f"webhook event {event_id} does not exist")
            if event.status in (WebhookEventStatus.COMPLETED, WebhookEventStatus.SKIPPED):
                # A job sent twice (sweeper, replay race): the work is already done.
                return {"status": event.status}
            event.status = WebhookEventStatus.PROCESSING
            event.attempts += 1

        try:
            async with unit_of_work(sessionmaker) as session:
                event = await lock_tenant_row(session, WebhookEvent, organization_id, event_id)
                assert event is not None
                channel = await session.get_one(Channel, event.channel_id)
                handler = topics.get(event.source, event.topic)
                if handler is None:
                    raise UnprocessablePayload(f"no handler for {event.source} {event.topic}")
                result = await handler(session, channel, event)
                event.status = result.status
                event.error = result.note
                event.resource_id = result.resource_id or event.resource_id
                event.processed_at = utcnow()
        except UnprocessablePayload as exc:
            await _record_failure(sessionmaker, organization_id, event_id, exc, final=True)
            raise PermanentJobError(str(exc)) from exc
        except Exception as exc:
            await _record_failure(
                sessionmaker, organization_id, event_id, exc, final=context.is_last_attempt
            )
            raise
        return {"status": result.status}

    return handle


async def _record_failure(
    sessionmaker: async_sessionmaker[AsyncSession],
    organization_id: uuid.UUID,
    event_id: uuid.UUID,
    error: BaseException,
    *,
    final: bool,
) -> None:
    message = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
    async with unit_of_work(sessionmaker) as session:
        event = await lock_tenant_row(session, WebhookEvent, organization_id, event_id)
        if event is None:
            return
        event.error = message
        # Between attempts the event waits again; after the last one it is FAILED for good.
        event.status = WebhookEventStatus.FAILED if final else WebhookEventStatus.ENQUEUED
    logger.warning("webhook event %s failed (final=%s): %s", event_id, final, message)
