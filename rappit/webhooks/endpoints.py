"""The webhook inbox, as seen by an operator."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from rappit.auth.dependencies import CurrentAuth
from rappit.kit.errors import NotFound
from rappit.kit.fastapi import DbSession
from rappit.kit.pagination import Page, paginate
from rappit.models import WebhookEvent, WebhookEventStatus
from rappit.webhooks.schemas import WebhookEventRead
from rappit.webhooks.service import replay

router = APIRouter(tags=["webhooks"])


@router.get("/webhook-events")
async def list_webhook_events(
    auth: CurrentAuth,
    session: DbSession,
    status: WebhookEventStatus | None = None,
    channel_id: uuid.UUID | None = None,
    topic: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[WebhookEventRead]:
    statement = select(WebhookEvent).where(WebhookEvent.organization_id == auth.organization_id)
    if status is not None:
        statement = statement.where(WebhookEvent.status == status)
    if channel_id is not None:
        statement = statement.where(WebhookEvent.channel_id == channel_id)
    if topic is not None:
        statement = statement.where(WebhookEvent.topic == topic)
    rows, next_cursor = await paginate(
        session, statement, WebhookEvent.id, cursor=cursor, limit=limit
    )
    return Page(items=[WebhookEventRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/webhook-events/{event_id}")
async def get_webhook_event(
    event_id: uuid.UUID, auth: CurrentAuth, session: DbSession
) -> WebhookEventRead:
    event = await session.scalar(
        select(WebhookEvent).where(
            WebhookEvent.organization_id == auth.organization_id, WebhookEvent.id == event_id
        )
    )
    if event is None:
        raise NotFound("webhook event not found")
    return WebhookEventRead.model_validate(event)


@router.post("/webhook-events/{event_id}/replay", status_code=202)
async def replay_webhook_event(
    event_id: uuid.UUID, auth: CurrentAuth, session: DbSession
) -> WebhookEventRead:
    """Process the event again, e.g. after fixing what made it fail. The processing is
    idempotent, so replaying a completed event changes nothing that is already right."""
    event = await replay(session, auth.organization_id, event_id)
    return WebhookEventRead.model_validate(event)
