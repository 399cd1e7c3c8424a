"""The queues through the admin API: counts, and dead letters kept per organisation, on real
Redis under the test's own key prefix."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from rappit.app import create_app
from rappit.auth.service import create_api_key
from rappit.kit.db import unit_of_work
from rappit.queues.client import QueueClient
from rappit.queues.jobs import JobRequest
from rappit.queues.names import ALL_QUEUES, QueueName
from rappit.queues.worker import JobContext, PermanentJobError, QueueWorker, WorkerOptions
from rappit.runtime import Runtime
from tests.conftest import Tenant, TestDatabase

ROUTES = [
    ("GET", "/api/v1/queues"),
    ("GET", "/api/v1/dead-letters"),
    ("POST", "/api/v1/dead-letters/webhook-processing.evt-1/replay"),
    ("DELETE", "/api/v1/dead-letters"),
]


@pytest.fixture
async def queue_api(queue_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The admin API of a process whose runtime has a queue (the test's Redis prefix)."""
    transport = httpx.ASGITransport(app=create_app(runtime=queue_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as http:
        yield http


async def _wait_for(condition: Any, message: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {message}"
        await asyncio.sleep(0.05)


async def _dead_letter(
    queue_client: QueueClient,
    queue: QueueName,
    job_id: str,
    organization_id: uuid.UUID,
    error: str = "ValueError: boom",
) -> str:
    """A dead-letter copy of a job carrying ``organization_id``, made as the worker makes it."""
    await queue_client.add(
        JobRequest(queue, "process", job_id, {"organization_id": str(organization_id)})
    )
    job = await queue_client.get_job(queue, job_id)
    assert job is not None
    await queue_client.dead_letter(queue, job, error)
    return f"{queue.value}.{job_id}"


def _when(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


# --- counts ---------------------------------------------------------------------------------------


async def test_counts_per_queue_for_all_seven_queues(
    queue_api: httpx.AsyncClient, queue_client: QueueClient, tenant: Tenant
) -> None:
    for n in range(3):
        await queue_client.add(JobRequest(QueueName.WEBHOOK_PROCESSING, "process", f"evt-{n}"))
    await queue_client.add(JobRequest(QueueName.CHANNEL_SYNC, "push", "push-now"))
    await queue_client.add(
        JobRequest(QueueName.CHANNEL_SYNC, "push", "push-later", delay_ms=3_600_000)
    )

    response = await queue_api.get("/api/v1/queues", headers=tenant.headers)

    assert response.status_code == 200
    zero = {"waiting": 0, "active": 0, "delayed": 0, "completed": 0, "failed": 0}
    expected = {name.value: {"name": name.value, **zero} for name in ALL_QUEUES}
    expected["webhook-processing"]["waiting"] = 3
    expected["channel-sync"].update(waiting=1, delayed=1)
    assert response.json() == {"items": list(expected.values()), "next_cursor": None}
    assert [item["name"] for item in response.json()["items"]] == [
        "webhook-processing",
        "shopify-sync",
        "woocommerce-sync",
        "channel-sync",
        "shipment-create",
        "shipment-tracking",
        "dead-letter",
    ]


# --- auth -----------------------------------------------------------------------------------------


async def _non_admin_key(database: TestDatabase, tenant: Tenant) -> str:
    async with unit_of_work(database.sessionmaker) as session:
        _, plaintext = await create_api_key(session, tenant.organization_id, name="read-only")
    return plaintext


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_key_without_admin_rights_is_forbidden(
    queue_api: httpx.AsyncClient,
    queue_client: QueueClient,
    database: TestDatabase,
    tenant: Tenant,
    method: str,
    path: str,
) -> None:
    letter_id = await _dead_letter(
        queue_client, QueueName.WEBHOOK_PROCESSING, "evt-1", tenant.organization_id
    )
    key = await _non_admin_key(database, tenant)

    response = await queue_api.request(method, path, headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "detail": "this call needs an admin API key"}
    # Nothing was replayed or purged.
    assert await queue_client.get_dead_letter(letter_id) is not None


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_no_key_is_unauthorized(queue_api: httpx.AsyncClient, method: str, path: str) -> None:
    response = await queue_api.request(method, path)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


# --- no queue, or Redis away ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_process_without_queue_answers_503(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str
) -> None:
    # The `client` fixture's runtime has no queue client.
    response = await client.request(method, path, headers=tenant.headers)
    assert response.status_code == 503
    assert response.json() == {
        "error": "queue_unavailable",
        "detail": "this process has no queue configured",
    }


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_unreachable_redis_answers_503(
    queue_runtime: Runtime, tenant: Tenant, method: str, path: str
) -> None:
    unreachable = QueueClient(f"redis://127.0.0.1:{_closed_port()}/0", prefix="nowhere")
    runtime = Runtime(
        settings=queue_runtime.settings,
        engine=queue_runtime.engine,
        sessionmaker=queue_runtime.sessionmaker,
        secret_box=queue_runtime.secret_box,
        queue=unreachable,
    )
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as http:
            response = await http.request(method, path, headers=tenant.headers)
    finally:
        await unreachable.close()

    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "queue_unavailable"
    assert body["detail"].startswith("the queue's Redis is unreachable (")


# --- dead letters ---------------------------------------------------------------------------------


async def test_an_organisation_lists_only_its_own_dead_letters(
    queue_api: httpx.AsyncClient,
    queue_client: QueueClient,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    mine = await _dead_letter(
        queue_client,
        QueueName.WEBHOOK_PROCESSING,
        "evt-a",
        tenant.organization_id,
        error="KeyError: 'line_items'\n  File \"tasks.py\", line 12",
    )
    theirs = await _dead_letter(
        queue_client, QueueName.SHIPMENT_CREATE, "ship-b", other_tenant.organization_id
    )
    # A copy without any organisation (a system job) is shown to nobody through the API.
    system_job = JobRequest(QueueName.CHANNEL_SYNC, "sweep", "sweep-1")
    await queue_client.add(system_job)
    job = await queue_client.get_job(QueueName.CHANNEL_SYNC, "sweep-1")
    assert job is not None
    await queue_client.dead_letter(QueueName.CHANNEL_SYNC, job, "TimeoutError")

    listed = await queue_api.get("/api/v1/dead-letters", headers=tenant.headers)

    assert listed.status_code == 200
    letter = await queue_client.get_dead_letter(mine)
    assert letter is not None
    original = await queue_client.get_job(QueueName.WEBHOOK_PROCESSING, "evt-a")
    assert original is not None
    assert listed.json() == {
        "items": [
            {
                "id": "webhook-processing.evt-a",
                "queue": "webhook-processing",
                "name": "process",
                "job_id": "evt-a",
                "data": {"organization_id": str(tenant.organization_id)},
                "error": "KeyError: 'line_items'\n  File \"tasks.py\", line 12",
                "attempts": 1,
                "failed_at": listed.json()["items"][0]["failed_at"],
                "created_at": listed.json()["items"][0]["created_at"],
            }
        ],
        "next_cursor": None,
    }
    item = listed.json()["items"][0]
    assert datetime.fromisoformat(item["failed_at"]) == _when(letter.failed_at)
    assert datetime.fromisoformat(item["created_at"]) == _when(original.timestamp)

    other = await queue_api.get("/api/v1/dead-letters", headers=other_tenant.headers)
    assert [i["id"] for i in other.json()["items"]] == [theirs]
    assert other.json()["items"][0]["data"] == {
        "organization_id": str(other_tenant.organization_id)
    }


async def test_dead_letters_page_by_cursor(
    queue_api: httpx.AsyncClient, queue_client: QueueClient, tenant: Tenant
) -> None:
    ids = [
        await _dead_letter(
            queue_client, QueueName.WEBHOOK_PROCESSING, f"evt-{n}", tenant.organization_id
        )
        for n in range(5)
    ]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = (
            await queue_api.get("/api/v1/dead-letters", params=params, headers=tenant.headers)
        ).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5

    invalid = await queue_api.get(
        "/api/v1/dead-letters", params={"cursor": "not-a-cursor"}, headers=tenant.headers
    )
    assert invalid.status_code == 422
    assert invalid.json()["error"] == "invalid_input"


async def test_replaying_another_organisations_dead_letter_is_404(
    queue_api: httpx.AsyncClient,
    queue_client: QueueClient,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    theirs = await _dead_letter(
        queue_client, QueueName.WEBHOOK_PROCESSING, "evt-b", other_tenant.organization_id
    )

    response = await queue_api.post(f"/api/v1/dead-letters/{theirs}/replay", headers=tenant.headers)
    missing = await queue_api.post(
        "/api/v1/dead-letters/webhook-processing.nope/replay", headers=tenant.headers
    )

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "dead letter not found"}
    assert missing.status_code == 404
    assert missing.json() == response.json()
    assert await queue_client.get_dead_letter(theirs) is not None


async def test_replay_puts_a_failed_job_back_on_its_queue(
    queue_api: httpx.AsyncClient, queue_client: QueueClient, tenant: Tenant
) -> None:
    # The real path to the dead-letter queue: a worker's handler fails for good.
    async def handler(context: JobContext) -> None:
        raise PermanentJobError(f"order {context.data['order']} has no line items")

    worker = QueueWorker(
        QueueName.WEBHOOK_PROCESSING,
        {"process": handler},
        queue_client,
        WorkerOptions(concurrency=1, lock_duration_ms=5000, stalled_interval_ms=5000),
    )
    data = {"organization_id": str(tenant.organization_id), "order": 1001}
    await queue_client.add(JobRequest(QueueName.WEBHOOK_PROCESSING, "process", "evt-7", data))
    worker.start()
    try:

        async def failed() -> bool:
            state = await queue_client.job_state(QueueName.WEBHOOK_PROCESSING, "evt-7")
            return state == "failed"

        await _wait_for(failed, "the job to fail")
    finally:
        assert await worker.close(10)
    letter_id = "webhook-processing.evt-7"
    letter = await queue_client.get_dead_letter(letter_id)
    assert letter is not None
    assert letter.error == "PermanentJobError: order 1001 has no line items"

    response = await queue_api.post(
        f"/api/v1/dead-letters/{letter_id}/replay", headers=tenant.headers
    )

    assert response.status_code == 202
    assert response.json() == {
        "status": "replayed",
        "queue": "webhook-processing",
        "job_id": "evt-7",
    }
    assert await queue_client.job_state(QueueName.WEBHOOK_PROCESSING, "evt-7") == "waiting"
    job = await queue_client.get_job(QueueName.WEBHOOK_PROCESSING, "evt-7")
    assert job is not None
    assert (job.name, job.data, int(job.attemptsMade)) == ("process", data, 0)
    assert await queue_client.get_dead_letter(letter_id) is None
    listed = await queue_api.get("/api/v1/dead-letters", headers=tenant.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    # Replaying again: the entry is gone.
    again = await queue_api.post(f"/api/v1/dead-letters/{letter_id}/replay", headers=tenant.headers)
    assert again.status_code == 404


async def test_purge_removes_only_the_callers_dead_letters(
    queue_api: httpx.AsyncClient,
    queue_client: QueueClient,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    for n in range(3):
        await _dead_letter(
            queue_client, QueueName.WEBHOOK_PROCESSING, f"evt-a{n}", tenant.organization_id
        )
    theirs = [
        await _dead_letter(
            queue_client, QueueName.CHANNEL_SYNC, f"push-b{n}", other_tenant.organization_id
        )
        for n in range(2)
    ]

    purged = await queue_api.delete("/api/v1/dead-letters", headers=tenant.headers)

    assert purged.status_code == 200
    assert purged.json() == {"purged": 3}
    mine = await queue_api.get("/api/v1/dead-letters", headers=tenant.headers)
    assert mine.json() == {"items": [], "next_cursor": None}
    remaining = await queue_client.dead_letters()
    assert sorted(letter.id for letter in remaining) == sorted(theirs)
    again = await queue_api.delete("/api/v1/dead-letters", headers=tenant.headers)
    assert again.json() == {"purged": 0}
