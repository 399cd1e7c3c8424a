"""Starting a sync and following its progress."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from rappit.auth.dependencies import CurrentAuth
from rappit.channels.service import get_channel
from rappit.kit.fastapi import DbSession
from rappit.kit.pagination import Page, paginate
from rappit.models import SyncResource, SyncRun
from rappit.runtime import RuntimeDep
from rappit.sync.reconciliation import latest_reconciliation, reconcile_cursor
from rappit.sync.schemas import DriftRead, SyncRunRead, SyncStart
from rappit.sync.service import get_run, start_run

router = APIRouter(tags=["sync"])


@router.post("/channels/{channel_id}/sync", status_code=202, response_model=SyncRunRead)
async def start_sync(
    channel_id: uuid.UUID,
    body: SyncStart,
    auth: CurrentAuth,
    session: DbSession,
    runtime: RuntimeDep,
) -> JSONResponse:
    """Start a pull (202). If one of the same resource is already under way, that one is
    returned with 200 instead of starting a second."""
    cursor = (
        reconcile_cursor(runtime.settings.reconcile_window_hours)
        if body.resource == SyncResource.RECONCILE
        else None
    )
    run, created = await start_run(
        session, auth.organization_id, channel_id, body.resource, cursor=cursor
    )
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


@router.get("/channels/{channel_id}/drift")
async def channel_drift(channel_id: uuid.UUID, auth: CurrentAuth, session: DbSession) -> DriftRead:
    """The latest completed reconciliation's figures: what was missing, stale or different,
    and what it healed."""
    channel = await get_channel(session, auth.organization_id, channel_id)
    run = await latest_reconciliation(session, auth.organization_id, channel.id)
    if run is None:
        return DriftRead(
            channel_id=channel.id,
            run_id=None,
            reconciled_at=None,
            started_at=None,
            window_hours=None,
            window_start=None,
            counts={},
            drift={},
            problems=[],
        )
    since = run.cursor.get("since")
    return DriftRead(
        channel_id=channel.id,
        run_id=run.id,
        reconciled_at=run.finished_at,
        started_at=run.started_at,
        window_hours=run.cursor.get("window_hours"),
        window_start=datetime.fromisoformat(since) if since else None,
        counts=run.counts,
        drift=run.drift,
        problems=run.problems,
    )
