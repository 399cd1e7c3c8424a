"""Starting a sync and following its progress."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from rappit.auth.dependencies import CurrentAuth
from rappit.channels.service import get_channel
from rappit.kit.fastapi import DbSession
from rappit.kit.pagination import Page, paginate
from rappit.models import SyncRun
from rappit.sync.schemas import SyncRunRead, SyncStart
from rappit.sync.service import get_run, start_run

router = APIRouter(tags=["sync"])


@router.post("/channels/{channel_id}/sync", status_code=202, response_model=SyncRunRead)
async def start_sync(
    channel_id: uuid.UUID, body: SyncStart, auth: CurrentAuth, session: DbSession
) -> JSONResponse:
    """Start a pull (202). If one of the same resource is already under way, that one is
    returned with 200 instead of starting a second."""
    run, created = await start_run(session, auth.organization_id, channel_id, body.resource)
    return JSONResponse(
        SyncRunRead.model_validate(run).model_dump(mode="json"),
        status_code=202 if created else 200,
    )


@router.get("/channels/{channel_id}/sync-runs")
async def list_sync_runs(
    channel_id: uuid.UUID,
    auth: CurrentAuth,
    session: DbSession,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[SyncRunRead]:
    channel = await get_channel(session, auth.organization_id, channel_id)
    rows, next_cursor = await paginate(
        session,
        select(SyncRun).where(
            SyncRun.organization_id == auth.organization_id, SyncRun.channel_id == channel.id
        ),
        SyncRun.id,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[SyncRunRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/sync-runs/{run_id}")
async def get_sync_run(run_id: uuid.UUID, auth: CurrentAuth, session: DbSession) -> SyncRunRead:
    return SyncRunRead.model_validate(await get_run(session, auth.organization_id, run_id))
