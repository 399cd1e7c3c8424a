"""Stock levels, adjustments and the movement ledger through the admin API."""

from __future__ import annotations

import httpx
import pytest

from rappit.kit.db import unit_of_work
from rappit.models import Channel
from rappit.orders.service import OrderService
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import channel_order, line, make_channel, make_sku, make_warehouse


@pytest.fixture
async def seeded(database: TestDatabase, tenant: Tenant) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        await make_sku(session, tenant.organization_id, "A")
        await make_sku(session, tenant.organization_id, "B")
        await make_warehouse(session, tenant.organization_id, "W1", priority=1)
        await make_warehouse(session, tenant.organization_id, "W2", priority=2)


async def _adjust(api: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await api.post("/api/v1/inventory/adjustments", json={"reason": "count", **body})


@pytest.mark.usefixtures("seeded")
async def test_adjust_then_read_levels(api: httpx.AsyncClient) -> None:
    first = await _adjust(api, sku="A", warehouse="W1", delta=5)
    assert first.status_code == 201
    assert first.json() == {
        "sku": "A",
        "warehouse": "W1",
        "on_hand": 5,
        "reserved": 0,
        "available": 5,
    }
    assert (await _adjust(api, sku="A", warehouse="W2", set=3)).status_code == 201
    assert (await _adjust(api, sku="B", warehouse="W1", delta=1)).status_code == 201

    levels = (await api.get("/api/v1/inventory", params={"sku": "A"})).json()
    assert levels == {
        "items": [
            {"sku": "A", "warehouse": "W1", "on_hand": 5, "reserved": 0, "available": 5},
            {"sku": "A", "warehouse": "W2", "on_hand": 3, "reserved": 0, "available": 3},
        ],
        "next_cursor": None,
    }
    by_warehouse = (await api.get("/api/v1/inventory", params={"warehouse": "W1"})).json()
    assert [(i["sku"], i["on_hand"]) for i in by_warehouse["items"]] == [("A", 5), ("B", 1)]

    movements = (await api.get("/api/v1/inventory/movements", params={"sku": "A"})).json()
    assert [(m["on_hand_delta"], m["reason"], m["note"]) for m in movements["items"]] == [
        (5, "adjustment", "count"),
        (3, "adjustment", "count"),
    ]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"sku": "A", "warehouse": "W1"}, 422, "validation_error"),
        ({"sku": "A", "warehouse": "W1", "delta": 1, "set": 1}, 422, "validation_error"),
        ({"sku": "A", "warehouse": "W1", "delta": 0}, 422, "validation_error"),
        ({"sku": "A", "warehouse": "W1", "set": -1}, 422, "validation_error"),
        ({"sku": "NOPE", "warehouse": "W1", "delta": 1}, 404, "not_found"),
        ({"sku": "A", "warehouse": "NOPE", "delta": 1}, 404, "not_found"),
        ({"sku": "A", "warehouse": "W1", "delta": -1}, 409, "stock_below_reserved"),
    ],
)
async def test_bad_adjustments_change_nothing(
    api: httpx.AsyncClient, body: dict[str, object], status: int, error: str
) -> None:
    response = await _adjust(api, **body)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert (await api.get("/api/v1/inventory")).json()["items"] == []
    assert (await api.get("/api/v1/inventory/movements")).json()["items"] == []


async def test_stock_below_reserved_says_how_much_is_reserved(
    api: httpx.AsyncClient, database: TestDatabase, tenant: Tenant
) -> None:
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, org)
        await make_sku(session, org, "A")
        await make_warehouse(session, org, "W1")
    await _adjust(api, sku="A", warehouse="W1", delta=5)
    async with unit_of_work(database.sessionmaker) as session:
        channel_row = await session.get_one(Channel, channel.id)
        await OrderService(session, org).create_or_update_from_channel(
            channel_row, channel_order("1", [line("L1", 4, sku="A")])
        )

    response = await _adjust(api, sku="A", warehouse="W1", set=3)
    assert response.status_code == 409
    assert response.json() == {
        "error": "stock_below_reserved",
        "detail": "on hand would become 3, below the 4 units reserved for orders (or below zero)",
        "on_hand": 5,
        "reserved": 4,
    }


async def test_new_stock_goes_to_waiting_orders(
    api: httpx.AsyncClient, database: TestDatabase, tenant: Tenant
) -> None:
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, org)
        await make_sku(session, org, "A")
        await make_warehouse(session, org, "W1")
        await OrderService(session, org).create_or_update_from_channel(
            channel, channel_order("1", [line("L1", 2, sku="A")])
        )
    assert (await api.get("/api/v1/orders")).json()["items"][0]["status"] == "BACKORDERED"

    await _adjust(api, sku="A", warehouse="W1", delta=5)

    assert (await api.get("/api/v1/orders")).json()["items"][0]["status"] == "RESERVED"
    levels = (await api.get("/api/v1/inventory", params={"sku": "A"})).json()["items"]
    assert [(i["on_hand"], i["reserved"], i["available"]) for i in levels] == [(5, 2, 3)]


async def test_other_organisation_cannot_see_or_adjust(
    client: httpx.AsyncClient, database: TestDatabase, tenant: Tenant, other_tenant: Tenant
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        await make_sku(session, tenant.organization_id, "A")
        await make_warehouse(session, tenant.organization_id, "W1")
    await client.post(
        "/api/v1/inventory/adjustments",
        json={"sku": "A", "warehouse": "W1", "delta": 2, "reason": "x"},
        headers=tenant.headers,
    )
    response = await client.post(
        "/api/v1/inventory/adjustments",
        json={"sku": "A", "warehouse": "W1", "delta": 2, "reason": "x"},
        headers=other_tenant.headers,
    )
    assert response.status_code == 404
    assert (await client.get("/api/v1/inventory", headers=other_tenant.headers)).json()[
        "items"
    ] == []
    assert (
        await client.get("/api/v1/inventory", params={"sku": "A"}, headers=other_tenant.headers)
    ).status_code == 404
    movements = await client.get("/api/v1/inventory/movements", headers=other_tenant.headers)
    assert movements.json() == {"items": [], "next_cursor": None}
