"""The fulfilment API: creating a fulfilment records it, consumes its stock once and queues
its write-back; repeats with an Idempotency-Key answer the first; bad requests write nothing;
tracking changes are saved and queued."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from rappit.app import create_app
from rappit.kit.db import unit_of_work
from rappit.models import Channel, ChannelStatus, Fulfillment, Order, OrderItem
from rappit.orders.service import OrderService
from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from rappit.runtime import Runtime
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import (
    assert_ledger_replays,
    channel_order,
    levels,
    line,
    make_channel,
    make_sku,
    make_warehouse,
    stock,
)

TRACKING = {"number": "1Z999AA10123456784", "company": "UPS", "url": "https://ups.example/1Z9"}


@dataclass
class Seeded:
    order_id: uuid.UUID
    other_order_id: uuid.UUID
    # external line id -> order item id
    items: dict[str, uuid.UUID]
    channel_id: uuid.UUID


@pytest.fixture
async def queue_api(queue_runtime: Runtime, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a process with a queue, as the tenant."""
    transport = httpx.ASGITransport(app=create_app(runtime=queue_runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://rappit.test", headers=tenant.headers
    ) as http:
        yield http


@pytest.fixture
async def seeded(database: TestDatabase, tenant: Tenant) -> Seeded:
    """Order 1001 (3 x A on line L1, 2 x B on L2) and order 1002 (1 x A on L9), paid and
    reserved; 10 of each SKU in stock."""
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, org)
        warehouse = await make_warehouse(session, org, "W")
        for code in ("A", "B"):
            await stock(session, org, await make_sku(session, org, code), warehouse, 10)
        service = OrderService(session, org)
        first = await service.create_or_update_from_channel(
            channel, channel_order("1001", [line("L1", 3, sku="A"), line("L2", 2, sku="B")])
        )
        second = await service.create_or_update_from_channel(
            channel, channel_order("1002", [line("L9", 1, sku="A")])
        )
        items = {
            item.external_item_id: item.id
            for item in (await session.scalars(select(OrderItem))).all()
        }
    return Seeded(first.order.id, second.order.id, items, channel.id)


def _items(seeded: Seeded, **units: int) -> list[dict[str, Any]]:
    return [
        {"order_item_id": str(seeded.items[external_id]), "quantity": quantity}
        for external_id, quantity in units.items()
    ]


async def _snapshot(
    database: TestDatabase, tenant: Tenant
) -> tuple[int, list[tuple[int, int]], list[str]]:
    """(fulfilment rows, sorted (on hand, reserved) levels, order statuses)."""
    async with database.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(Fulfillment))
        stock_levels = sorted((await levels(session, tenant.organization_id)).values())
        statuses = list(
            (await session.scalars(select(Order.status).order_by(Order.external_order_id))).all()
        )
        await assert_ledger_replays(session, tenant.organization_id)
    return int(count or 0), stock_levels, statuses


async def _queued(queue_client: QueueClient) -> int:
    counts = (await queue_client.counts())[QueueName.CHANNEL_SYNC.value]
    return counts["waiting"] + counts["delayed"]


async def test_a_fulfilment_is_recorded_consumed_and_its_write_back_queued(
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    tenant: Tenant,
    seeded: Seeded,
    queue_client: QueueClient,
) -> None:
    response = await queue_api.post(
        f"/api/v1/orders/{seeded.order_id}/fulfillments",
        json={"items": _items(seeded, L1=2), "tracking": TRACKING, "notify_customer": True},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k not in ("id", "created_at", "updated_at")} == {
        "order_id": str(seeded.order_id),
        "external_fulfillment_id": None,
        "status": "pending",
        "tracking": TRACKING,
        "notify_customer": True,
        "items": [
            {"order_item_id": str(seeded.items["L1"]), "external_item_id": "L1", "quantity": 2}
        ],
        "sync_status": "pending",
        "sync_error": None,
    }
    # A: 2 of the 3 units held for order 1001 left; order 1002 still holds its one.
    assert await _snapshot(database, tenant) == (
        1,
        [(8, 2), (10, 2)],
        ["PARTIALLY_FULFILLED", "RESERVED"],
    )
    job = await queue_client.get_job(QueueName.CHANNEL_SYNC, f"fulfillment-writeback.{body['id']}")
    assert job is not None
    assert (job.name, job.data) == (
        "fulfillments.writeback",
        {"organization_id": str(tenant.organization_id), "fulfillment_id": body["id"]},
    )
    one = await queue_api.get(f"/api/v1/fulfillments/{body['id']}")
    listed = await queue_api.get(f"/api/v1/orders/{seeded.order_id}/fulfillments")
    assert one.json() == body
    assert listed.json() == {"items": [body], "next_cursor": None}
    other_order = await queue_api.get(f"/api/v1/orders/{seeded.other_order_id}/fulfillments")
    assert other_order.json() == {"items": [], "next_cursor": None}


async def test_a_repeat_with_the_same_idempotency_key_answers_the_first_fulfilment(
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    tenant: Tenant,
    seeded: Seeded,
    queue_client: QueueClient,
) -> None:
    request = {"items": _items(seeded, L1=3, L2=2), "tracking": TRACKING}
    headers = {"Idempotency-Key": "ship-1001-a"}

    first = await queue_api.post(
        f"/api/v1/orders/{seeded.order_id}/fulfillments", json=request, headers=headers
    )
    # The first one closed the order: the repeat is still answered, not refused.
    again = await queue_api.post(
        f"/api/v1/orders/{seeded.order_id}/fulfillments", json=request, headers=headers
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert await _snapshot(database, tenant) == (1, [(7, 1), (8, 0)], ["FULFILLED", "RESERVED"])
    assert await _queued(queue_client) == 1


async def test_an_idempotency_key_used_for_other_items_is_refused(
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    tenant: Tenant,
    seeded: Seeded,
    queue_client: QueueClient,
) -> None:
    headers = {"Idempotency-Key": "ship-1"}
    url = f"/api/v1/orders/{seeded.order_id}/fulfillments"
    first = await queue_api.post(url, json={"items": _items(seeded, L1=1)}, headers=headers)
    before = await _snapshot(database, tenant)

    other_items = await queue_api.post(url, json={"items": _items(seeded, L1=2)}, headers=headers)
    other_order = await queue_api.post(
        f"/api/v1/orders/{seeded.other_order_id}/fulfillments",
        json={"items": _items(seeded, L9=1)},
        headers=headers,
    )

    for refused in (other_items, other_order):
        assert refused.status_code == 409, refused.text
        assert refused.json() == {
            "error": "conflict",
            "detail": "this Idempotency-Key was used for another fulfilment request",
            "fulfillment_id": first.json()["id"],
        }
    assert await _snapshot(database, tenant) == before
    assert await _queued(queue_client) == 1


BAD_REQUESTS: dict[str, tuple[int, str]] = {
    "unknown item": (422, "is not part of this order"),
    "item of another order": (422, "is not part of this order"),
    "more than ordered": (422, "has 3 unit(s) left to fulfil, not 4"),
    "zero units": (422, "greater than 0"),
    "no items": (422, "at least 1 item"),
    "tracking url not a url": (422, "URL"),
    "unknown order": (404, "order not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
async def test_a_bad_request_writes_nothing(
    case: str,
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    tenant: Tenant,
    seeded: Seeded,
    queue_client: QueueClient,
) -> None:
    order_id = seeded.order_id
    body: dict[str, Any] = {"items": _items(seeded, L1=1)}
    if case == "unknown item":
        body["items"] = [{"order_item_id": str(uuid.uuid4()), "quantity": 1}]
    elif case == "item of another order":
        body["items"] = _items(seeded, L1=1, L9=1)
    elif case == "more than ordered":
        body["items"] = _items(seeded, L1=4)
    elif case == "zero units":
        body["items"] = _items(seeded, L1=0)
    elif case == "no items":
        body["items"] = []
    elif case == "tracking url not a url":
        body["tracking"] = {"number": "1Z", "url": "not a url"}
    elif case == "unknown order":
        order_id = uuid.uuid4()
    before = await _snapshot(database, tenant)

    response = await queue_api.post(f"/api/v1/orders/{order_id}/fulfillments", json=body)

    status, detail = BAD_REQUESTS[case]
    assert response.status_code == status, response.text
    assert detail in response.text
    assert await _snapshot(database, tenant) == before
    assert await _queued(queue_client) == 0


async def test_what_an_earlier_fulfilment_took_cannot_be_fulfilled_again(
    queue_api: httpx.AsyncClient, database: TestDatabase, tenant: Tenant, seeded: Seeded
) -> None:
    url = f"/api/v1/orders/{seeded.order_id}/fulfillments"
    assert (await queue_api.post(url, json={"items": _items(seeded, L1=2)})).status_code == 201
    before = await _snapshot(database, tenant)

    response = await queue_api.post(url, json={"items": _items(seeded, L1=2)})

    assert response.status_code == 422
    assert response.json()["detail"].endswith("has 1 unit(s) left to fulfil, not 2")
    assert await _snapshot(database, tenant) == before


async def test_units_the_channel_shipped_cannot_be_fulfilled_in_rappit(
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    tenant: Tenant,
    seeded: Seeded,
    queue_client: QueueClient,
) -> None:
    """The channel reports 2 of L1's 3 units shipped (its fulfilment not received yet): the
    channel would refuse them, so Rappit does too, and the order shows what is left."""
    async with unit_of_work(database.sessionmaker) as session:
        channel = await session.get_one(Channel, seeded.channel_id)
        shipped = line("L1", 3, sku="A").model_copy(update={"channel_fulfilled_quantity": 2})
        await OrderService(session, tenant.organization_id).create_or_update_from_channel(
            channel, channel_order("1001", [shipped, line("L2", 2, sku="B")], minutes=1)
        )
    before = await _snapshot(database, tenant)
    url = f"/api/v1/orders/{seeded.order_id}/fulfillments"

    refused = await queue_api.post(url, json={"items": _items(seeded, L1=2)})

    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"].endswith("has 1 unit(s) left to fulfil, not 2")
    assert await _snapshot(database, tenant) == before
    assert await _queued(queue_client) == 0
    detail = (await queue_api.get(f"/api/v1/orders/{seeded.order_id}")).json()
    assert [
        (
            i["external_item_id"],
            i["fulfilled_quantity"],
            i["channel_fulfilled_quantity"],
            i["open_quantity"],
            i["reserved_quantity"],
        )
        for i in sorted(detail["items"], key=lambda i: i["external_item_id"])
    ] == [("L1", 0, 2, 1, 3), ("L2", 0, 0, 2, 2)]

    made = await queue_api.post(url, json={"items": _items(seeded, L1=1)})
    assert made.status_code == 201, made.text


async def test_a_cancelled_order_cannot_be_fulfilled(
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    tenant: Tenant,
    seeded: Seeded,
    queue_client: QueueClient,
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        channel = await session.get_one(Channel, seeded.channel_id)
        await OrderService(session, tenant.organization_id).create_or_update_from_channel(
            channel,
            channel_order(
                "1001",
                [line("L1", 3, sku="A"), line("L2", 2, sku="B")],
                minutes=5,
                cancelled=True,
            ),
        )
    before = await _snapshot(database, tenant)

    response = await queue_api.post(
        f"/api/v1/orders/{seeded.order_id}/fulfillments", json={"items": _items(seeded, L1=1)}
    )

    assert (response.status_code, response.json()) == (
        409,
        {"error": "conflict", "detail": "the order is cancelled: nothing can be fulfilled"},
    )
    assert await _snapshot(database, tenant) == before
    assert await _queued(queue_client) == 0


async def test_an_order_of_a_disconnected_channel_cannot_be_fulfilled(
    queue_api: httpx.AsyncClient, database: TestDatabase, tenant: Tenant, seeded: Seeded
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        (await session.get_one(Channel, seeded.channel_id)).status = ChannelStatus.DISCONNECTED
    before = await _snapshot(database, tenant)

    response = await queue_api.post(
        f"/api/v1/orders/{seeded.order_id}/fulfillments", json={"items": _items(seeded, L1=1)}
    )

    assert response.status_code == 409
    assert "disconnected" in response.json()["detail"]
    assert await _snapshot(database, tenant) == before


async def test_another_organisations_order_is_not_found(
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    tenant: Tenant,
    other_tenant: Tenant,
    seeded: Seeded,
) -> None:
    before = await _snapshot(database, tenant)

    response = await queue_api.post(
        f"/api/v1/orders/{seeded.order_id}/fulfillments",
        json={"items": _items(seeded, L1=1)},
        headers=other_tenant.headers,
    )

    assert (response.status_code, response.json()["detail"]) == (404, "order not found")
    assert await _snapshot(database, tenant) == before


async def test_new_tracking_is_saved_and_its_write_back_queued_again(
    queue_api: httpx.AsyncClient,
    database: TestDatabase,
    seeded: Seeded,
    queue_client: QueueClient,
) -> None:
    made = await queue_api.post(
        f"/api/v1/orders/{seeded.order_id}/fulfillments",
        json={"items": _items(seeded, L2=1), "tracking": {"number": "OLD"}},
    )
    fulfillment_id = made.json()["id"]
    job_id = f"fulfillment-writeback.{fulfillment_id}"
    # The first write is done and its job gone: the change needs the job to run again.
    await queue_client.queue(QueueName.CHANNEL_SYNC).remove(job_id)
    async with unit_of_work(database.sessionmaker) as session:
        written = await session.get_one(Fulfillment, uuid.UUID(fulfillment_id))
        written.external_fulfillment_id, written.status = "5001", "success"
        written.sync_status, written.synced_revision = "synced", 1

    response = await queue_api.patch(
        f"/api/v1/fulfillments/{fulfillment_id}",
        json={"tracking": TRACKING, "notify_customer": True},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["tracking"], body["notify_customer"], body["sync_status"]) == (
        TRACKING,
        True,
        "pending",
    )
    async with database.sessionmaker() as session:
        stored = await session.get_one(Fulfillment, uuid.UUID(fulfillment_id))
        assert (stored.sync_revision, stored.synced_revision) == (2, 1)
    assert await queue_client.job_state(QueueName.CHANNEL_SYNC, job_id) == "waiting"


async def test_a_cancelled_fulfilment_keeps_its_tracking(
    queue_api: httpx.AsyncClient, database: TestDatabase, seeded: Seeded
) -> None:
    made = await queue_api.post(
        f"/api/v1/orders/{seeded.order_id}/fulfillments", json={"items": _items(seeded, L2=1)}
    )
    fulfillment_id = uuid.UUID(made.json()["id"])
    async with unit_of_work(database.sessionmaker) as session:
        (await session.get_one(Fulfillment, fulfillment_id)).status = "cancelled"

    response = await queue_api.patch(
        f"/api/v1/fulfillments/{fulfillment_id}", json={"tracking": {"number": "NEW"}}
    )

    assert response.status_code == 409
    async with database.sessionmaker() as session:
        stored = await session.get_one(Fulfillment, fulfillment_id)
        assert (stored.tracking_number, stored.sync_revision) == (None, 1)
    missing = await queue_api.patch(
        f"/api/v1/fulfillments/{uuid.uuid4()}", json={"tracking": {"number": "NEW"}}
    )
    assert missing.status_code == 404
