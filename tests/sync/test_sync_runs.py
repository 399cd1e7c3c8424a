"""Sync runs with a stand-in puller: resumable progress, crash and resume without duplicates,
one run at a time per resource, the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.db import unit_of_work
from rappit.models import Product, SyncResource, SyncRun
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext
from rappit.runtime import Runtime
from rappit.sync.processing import run_handler
from rappit.sync.service import SyncContext, SyncRegistry, start_run
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import make_channel

PAGES = [[f"p{page}-{n}" for n in range(3)] for page in range(4)]


class Crash(Exception):
    pass


def puller(crash_on_page: int | None = None) -> Any:
    """Pulls PAGES, saving a product per item; optionally dies after fetching one page."""

    async def pull(sync: SyncContext) -> None:
        start = int(sync.cursor.get("page", 0))
        sync.total = sum(len(page) for page in PAGES)
        for index in range(start, len(PAGES)):
            if index == crash_on_page:
                raise Crash(f"connection lost on page {index}")

            async def apply(session: AsyncSession, items: list[str] = PAGES[index]) -> None:
                for title in items:
                    session.add(Product(organization_id=sync.organization_id, title=title))

            sync.count("fetched", len(PAGES[index]))
            await sync.commit_page(apply, {"page": index + 1})

    return pull


async def _run(database: TestDatabase, run: SyncRun, registry: SyncRegistry, attempt: int) -> Any:
    handler = run_handler(database.sessionmaker, registry)
    return await handler(
        JobContext(
            QueueName.SHOPIFY_SYNC,
            "sync.run",
            f"sync-run.{run.id}",
            {"organization_id": str(run.organization_id), "run_id": str(run.id)},
            attempt,
            5,
        )
    )


async def _start(queue_runtime: Runtime, tenant: Tenant) -> SyncRun:
    async with unit_of_work(queue_runtime.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id)
        run, created = await start_run(
            session, tenant.organization_id, channel.id, SyncResource.PRODUCTS
        )
        assert created
    return run


async def test_a_run_that_crashes_resumes_from_its_cursor(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    run = await _start(queue_runtime, tenant)
    assert queue_runtime.queue is not None
    assert (
        await queue_runtime.queue.job_state(QueueName.SHOPIFY_SYNC, f"sync-run.{run.id}")
        == "waiting"
    )

    crashing = SyncRegistry()
    crashing.register("shopify", SyncResource.PRODUCTS, puller(crash_on_page=2))
    with pytest.raises(Crash):
        await _run(database, run, crashing, attempt=1)
    async with database.sessionmaker() as session:
        saved = await session.get_one(SyncRun, run.id)
        assert (saved.status, saved.cursor, saved.counts) == (
            "PENDING",
            {"page": 2},
            {"fetched": 6},
        )
        assert saved.error == "Crash: connection lost on page 2"
        assert await session.scalar(select(func.count()).select_from(Product)) == 6

    healthy = SyncRegistry()
    healthy.register("shopify", SyncResource.PRODUCTS, puller())
    result = await _run(database, run, healthy, attempt=2)
    assert result == {"status": "COMPLETED", "counts": {"fetched": 12}}
    async with database.sessionmaker() as session:
        saved = await session.get_one(SyncRun, run.id)
        assert (saved.status, saved.attempts, saved.error, saved.total) == (
            "COMPLETED",
            2,
            None,
            12,
        )
        titles = (await session.scalars(select(Product.title).order_by(Product.title))).all()
        # Every item exactly once.
        assert titles == sorted(t for page in PAGES for t in page)
    # A late duplicate job for a finished run does nothing.
    assert (await _run(database, run, healthy, attempt=1))["status"] == "COMPLETED"


async def test_the_last_failed_attempt_marks_the_run_failed(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    run = await _start(queue_runtime, tenant)
    crashing = SyncRegistry()
    crashing.register("shopify", SyncResource.PRODUCTS, puller(crash_on_page=0))
    with pytest.raises(Crash):
        await _run(database, run, crashing, attempt=5)
    async with database.sessionmaker() as session:
        saved = await session.get_one(SyncRun, run.id)
        assert (saved.status, saved.finished_at is not None) == ("FAILED", True)


async def test_one_run_at_a_time_per_channel_and_resource(
    queue_runtime: Runtime, tenant: Tenant
) -> None:
    first = await _start(queue_runtime, tenant)
    async with unit_of_work(queue_runtime.sessionmaker) as session:
        again, created = await start_run(
            session, tenant.organization_id, first.channel_id, SyncResource.PRODUCTS
        )
        other, other_created = await start_run(
            session, tenant.organization_id, first.channel_id, SyncResource.ORDERS
        )
    assert (again.id, created) == (first.id, False)
    assert other_created is True
    assert other.id != first.id


async def test_the_api_starts_and_shows_runs(
    queue_runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    from rappit.app import create_app

    async with unit_of_work(queue_runtime.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id)
    transport = httpx.ASGITransport(app=create_app(runtime=queue_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as api:
        url = f"/api/v1/channels/{channel.id}/sync"
        started = await api.post(url, json={"resource": "orders"}, headers=tenant.headers)
        assert started.status_code == 202
        body = started.json()
        assert (body["resource"], body["status"], body["counts"]) == ("orders", "PENDING", {})
        repeated = await api.post(url, json={"resource": "orders"}, headers=tenant.headers)
        assert (repeated.status_code, repeated.json()["id"]) == (200, body["id"])
        bad = await api.post(url, json={"resource": "customers"}, headers=tenant.headers)
        assert bad.status_code == 422

        shown = await api.get(f"/api/v1/sync-runs/{body['id']}", headers=tenant.headers)
        assert shown.json()["id"] == body["id"]
        listed = await api.get(f"/api/v1/channels/{channel.id}/sync-runs", headers=tenant.headers)
        assert [r["id"] for r in listed.json()["items"]] == [body["id"]]

        hidden = await api.get(f"/api/v1/sync-runs/{body['id']}", headers=other_tenant.headers)
        assert hidden.status_code == 404
        missing = await api.post(
            f"/api/v1/channels/{uuid.uuid4()}/sync",
            json={"resource": "orders"},
            headers=tenant.headers,
        )
        assert missing.status_code == 404
