"""Running one sync run in a worker: ``PENDING → RUNNING → COMPLETED``, or ``FAILED`` after the
last attempt with the error kept on the row. Each attempt goes on from the saved cursor."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.kit.db import unit_of_work
from rappit.kit.types import utcnow
from rappit.models import Channel, SyncResource, SyncRun, SyncRunStatus
from rappit.models.base import lock_tenant_row
from rappit.queues.worker import Handler, JobContext, PermanentJobError
from rappit.sync.service import SyncContext, SyncRegistry
from rappit.webhooks.processing import UnprocessablePayload

logger = logging.getLogger(__name__)


def run_handler(
    sessionmaker: async_sessionmaker[AsyncSession],
    registry: SyncRegistry,
    on_progress: Callable[[SyncContext], None] | None = None,
) -> Handler:
    async def handle(context: JobContext) -> dict[str, object]:
        try:
            organization_id = uuid.UUID(str(context.data["organization_id"]))
            run_id = uuid.UUID(str(context.data["run_id"]))
        except (KeyError, ValueError) as exc:
            raise PermanentJobError(f"job data is not a sync run reference: {exc}") from exc

        async with unit_of_work(sessionmaker) as session:
            run = await lock_tenant_row(session, SyncRun, organization_id, run_id)
            if run is None:
                raise PermanentJobError(f"sync run {run_id} does not exist")
            if run.status == SyncRunStatus.COMPLETED:
                return {"status": run.status, "counts": run.counts}
            channel = await session.get_one(Channel, run.channel_id)
            puller = registry.get(channel.type, SyncResource(run.resource))
            run.status = SyncRunStatus.RUNNING
            run.attempts += 1
            run.started_at = run.started_at or utcnow()
            run.error = None
        if puller is None:
            await _finish(sessionmaker, organization_id, run_id, "no puller for this channel "
                          "type and resource", final=True)  # fmt: skip
            raise PermanentJobError(f"cannot sync {run.resource} of a {channel.type} channel")

        sync = SyncContext(sessionmaker, run, channel, on_progress)
        try:
            await puller(sync)
        except (PermanentJobError, UnprocessablePayload) as exc:
            await _finish(sessionmaker, organization_id, run_id, _text(exc), final=True)
            raise PermanentJobError(str(exc)) from exc
        except Exception as exc:
            await _finish(
                sessionmaker, organization_id, run_id, _text(exc), final=context.is_last_attempt
            )
            raise
        await _finish(sessionmaker, organization_id, run_id, None, final=True)
        return {"status": SyncRunStatus.COMPLETED, "counts": sync.counts}

    return handle


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:4000]


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession],
    organization_id: uuid.UUID,
    run_id: uuid.UUID,
    error: str | None,
    *,
    final: bool,
) -> None:
    async with unit_of_work(sessionmaker) as session:
        run = await lock_tenant_row(session, SyncRun, organization_id, run_id)
        if run is None:
            return
        run.error = error
        if error is None:
            run.status = SyncRunStatus.COMPLETED
            run.finished_at = utcnow()
        elif final:
            run.status = SyncRunStatus.FAILED
            run.finished_at = utcnow()
        else:
            # Waits for the next attempt, which goes on from the saved cursor.
            run.status = SyncRunStatus.PENDING
    if error is not None:
        logger.warning("sync run %s failed (final=%s): %s", run_id, final, error)
