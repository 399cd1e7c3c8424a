"""A sweep over every admin route in the OpenAPI schema: another organisation's key sees
nothing of the first organisation's data (404 for its objects, empty lists otherwise).

A route added without an entry below fails ``test_every_route_is_swept``, so the sweep grows
with the API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from rappit.app import create_app
from rappit.kit.db import unit_of_work
from rappit.kit.types import utcnow
from rappit.models import (
    Channel,
    Fulfillment,
    FulfillmentStatus,
    SyncResource,
    SyncRun,
    SyncRunStatus,
    WebhookEvent,
)
from rappit.orders.service import OrderService
from rappit.queues.client import QueueClient
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName
from rappit.runtime import Runtime
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import channel_order, line

# Body sent with each write route; valid in shape, so a 404 is about ownership, not syntax.
WRITE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/v1/products/{product_id}/skus"): {"code": "NEW"},
    ("post", "/api/v1/channels/{channel_id}/listings"): {"sku": "A-1", "external_variant_id": "9"},
    ("post", "/api/v1/channels/{channel_id}/locations"): {
        "external_location_id": "loc-2",
        "warehouse": "W1",
    },
    ("patch", "/api/v1/channels/{channel_id}"): {"name": "taken over"},
    ("post", "/api/v1/webhook-events/{event_id}/replay"): {},
    ("post", "/api/v1/channels/{channel_id}/sync"): {"resource": "orders"},
    ("post", "/api/v1/channels/{channel_id}/webhooks/register"): {},
    ("post", "/api/v1/orders/{order_id}/fulfillments"): {
        "items": [{"order_item_id": str(uuid.UUID(int=1)), "quantity": 1}],
        "tracking": {"number": "1Z1"},
    },
    ("patch", "/api/v1/fulfillments/{fulfillment_id}"): {"tracking": {"number": "1Z2"}},
    ("post", "/api/v1/inventory/adjustments"): {
        "sku": "A-1",
        "warehouse": "W1",
        "delta": 1,
        "reason": "x",
    },
}
# Creating routes: they act on the caller's own organisation; a separate check below shows the
# first organisation cannot see what the second one made.
OWN_CREATES = {
    ("post", "/api/v1/warehouses"),
    ("post", "/api/v1/products"),
    ("post", "/api/v1/channels"),
}
# Dead letters live in Redis: replaying another organisation's is a 404; purging acts on the
# caller's own (none here), and the first organisation's entry must survive it.
QUEUE_WRITES: dict[tuple[str, str], int] = {
    ("post", "/api/v1/dead-letters/{letter_id}/replay"): 404,
    ("delete", "/api/v1/dead-letters"): 200,
}
# Aggregates over every organisation, with no tenant data in them.
AGGREGATE_READS = {"/api/v1/queues"}
# Read routes whose filter names the first organisation's objects by code: 404, not empty.
FILTERED_READS: dict[str, dict[str, str]] = {
    "/api/v1/inventory": {"sku": "A-1"},
    "/api/v1/inventory/movements": {"sku": "A-1"},
}


@pytest.fixture
async def queue_api(queue_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a process with a queue, so the dead-letter routes answer."""
    transport = httpx.ASGITransport(app=create_app(runtime=queue_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as http:
        yield http


async def _seed_first_tenant(
    api: httpx.AsyncClient, database: TestDatabase, tenant: Tenant, queue_client: QueueClient
) -> dict[str, str]:
    headers = tenant.headers
    warehouse = await api.post(
        "/api/v1/warehouses", json={"code": "W1", "name": "One"}, headers=headers
    )
    product = await api.post(
        "/api/v1/products", json={"title": "P", "skus": [{"code": "A-1"}]}, headers=headers
    )
    channel = await api.post(
        "/api/v1/channels",
        json={
            "type": "shopify",
            "name": "Shop",
            "shop_domain": "first.myshopify.com",
            "access_token": "shpat_" + "a" * 32,
            "webhook_secret": "first-secret",
        },
        headers=headers,
    )
    assert (warehouse.status_code, product.status_code, channel.status_code) == (201, 201, 201)
    channel_id = channel.json()["id"]
    for path, body in [
        (
            f"/api/v1/channels/{channel_id}/locations",
            {"external_location_id": "1", "warehouse": "W1"},
        ),
        (f"/api/v1/channels/{channel_id}/listings", {"sku": "A-1", "external_variant_id": "1"}),
        (
            "/api/v1/inventory/adjustments",
            {"sku": "A-1", "warehouse": "W1", "delta": 5, "reason": "x"},
        ),
    ]:
        assert (await api.post(path, json=body, headers=headers)).status_code == 201
    async with unit_of_work(database.sessionmaker) as session:
        channel_row = await session.get_one(Channel, uuid.UUID(channel_id))
        result = await OrderService(session, tenant.organization_id).create_or_update_from_channel(
            channel_row, channel_order("1001", [line("L1", 1, sku="A-1")])
        )
        event = WebhookEvent(
            organization_id=tenant.organization_id,
            source="shopify",
            channel_id=channel_row.id,
            topic="orders/create",
            external_event_id="d-1",
            payload={},
        )
        session.add(event)
        # A finished reconciliation, so the sync-run and drift routes have something to hide.
        run = SyncRun(
            organization_id=tenant.organization_id,
            channel_id=channel_row.id,
            resource=SyncResource.RECONCILE,
            status=SyncRunStatus.COMPLETED,
            cursor={},
            counts={"orders_missing": 1},
            drift={"orders": [{"external_order_id": "1001", "drift": "missing"}]},
            problems=[],
            attempts=1,
            finished_at=utcnow(),
        )
        session.add(run)
        fulfillment = Fulfillment(
            organization_id=tenant.organization_id,
            order_id=result.order.id,
            status=FulfillmentStatus.SUCCESS,
            tracking_number="1Z0",
        )
        session.add(fulfillment)
        await session.flush()
    # A job of the first organisation that used up its attempts.
    await queue_client.add(
        JobRequest(
            QueueName.WEBHOOK_PROCESSING,
            "process",
            str(event.id),
            {"organization_id": str(tenant.organization_id)},
        )
    )
    job = await queue_client.get_job(QueueName.WEBHOOK_PROCESSING, str(event.id))
    await queue_client.dead_letter(QueueName.WEBHOOK_PROCESSING, job, "ValueError: boom")
    return {
        "letter_id": f"webhook-processing.{event.id}",
        "product_id": product.json()["id"],
        "channel_id": channel_id,
        "order_id": str(result.order.id),
        "event_id": str(event.id),
        "customer_id": "7001",
        "run_id": str(run.id),
        "fulfillment_id": str(fulfillment.id),
    }


def _admin_operations(api: httpx.AsyncClient) -> list[tuple[str, str]]:
    app: Any = api._transport.app  # type: ignore[attr-defined]
    return sorted(
        (method, path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    )


async def test_every_route_is_swept(client: httpx.AsyncClient) -> None:
    for method, path in _admin_operations(client):
        covered = (
            method == "get"
            or (method, path) in WRITE_BODIES
            or (method, path) in OWN_CREATES
            or (method, path) in QUEUE_WRITES
        )
        assert covered, f"{method.upper()} {path} has no tenant-isolation case"


async def test_another_organisation_sees_nothing(
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    queue_client: QueueClient,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    client = queue_api
    ids = await _seed_first_tenant(client, database, tenant, queue_client)
    # The second organisation has a warehouse of the same code, so a leak could not hide
    # behind "warehouse not found".
    await client.post(
        "/api/v1/warehouses", json={"code": "W1", "name": "Other"}, headers=other_tenant.headers
    )
    swept = 0
    for method, path in _admin_operations(client):
        if (method, path) in OWN_CREATES:
            continue
        url = path.format(**ids)
        if method == "get":
            params = FILTERED_READS.get(path, {})
            response = await client.get(url, params=params, headers=other_tenant.headers)
            if "{" in path or params:
                assert response.status_code == 404, f"GET {path}: {response.status_code}"
            elif path in AGGREGATE_READS:
                assert response.status_code == 200, f"GET {path}: {response.status_code}"
            elif path == "/api/v1/warehouses":
                assert [w["name"] for w in response.json()["items"]] == ["Other"]
            else:
                assert response.json() == {"items": [], "next_cursor": None}, f"GET {path}"
        elif (method, path) in QUEUE_WRITES:
            response = await client.request(method, url, headers=other_tenant.headers)
            expected = QUEUE_WRITES[(method, path)]
            assert response.status_code == expected, f"{method.upper()} {path}: {response.text}"
        else:
            response = await client.request(
                method, url, json=WRITE_BODIES[(method, path)], headers=other_tenant.headers
            )
            assert response.status_code == 404, f"{method.upper()} {path}: {response.text}"
        swept += 1
    assert swept == len(_admin_operations(client)) - len(OWN_CREATES)

    # Nothing the second organisation tried changed the first organisation's data.
    levels = await client.get("/api/v1/inventory", params={"sku": "A-1"}, headers=tenant.headers)
    assert [(i["on_hand"], i["reserved"]) for i in levels.json()["items"]] == [(5, 1)]
    channel = await client.get(f"/api/v1/channels/{ids['channel_id']}", headers=tenant.headers)
    assert channel.json()["name"] == "Shop"
    fulfillments = await client.get(
        f"/api/v1/orders/{ids['order_id']}/fulfillments", headers=tenant.headers
    )
    assert [(f["tracking"]["number"], f["sync_status"]) for f in fulfillments.json()["items"]] == [
        ("1Z0", None)
    ]
    drift = await client.get(f"/api/v1/channels/{ids['channel_id']}/drift", headers=tenant.headers)
    assert (drift.json()["run_id"], drift.json()["counts"]) == (
        ids["run_id"],
        {"orders_missing": 1},
    )
    letters = await client.get("/api/v1/dead-letters", headers=tenant.headers)
    assert [letter["id"] for letter in letters.json()["items"]] == [ids["letter_id"]]


async def test_what_one_organisation_creates_the_other_cannot_list(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await client.post(
        "/api/v1/products",
        json={"title": "Theirs", "skus": [{"code": "T-1"}]},
        headers=other_tenant.headers,
    )
    mine = await client.get("/api/v1/products", headers=tenant.headers)
    assert mine.json() == {"items": [], "next_cursor": None}
    skus = await client.get("/api/v1/skus", params={"code": "T-1"}, headers=tenant.headers)
    assert skus.json() == {"items": [], "next_cursor": None}
