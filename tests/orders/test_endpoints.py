"""The orders admin API: filters, pagination, the detail document and tenant isolation."""

from __future__ import annotations

import httpx

from rappit.kit.db import unit_of_work
from rappit.orders.service import OrderService
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import (
    channel_order,
    line,
    make_channel,
    make_sku,
    make_warehouse,
    stock,
)


async def _seed(database: TestDatabase, tenant: Tenant) -> str:
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, org)
        sku = await make_sku(session, org, "TSHIRT-M")
        await stock(session, org, sku, await make_warehouse(session, org, "MAIN"), 3)
        service = OrderService(session, org)
        await service.create_or_update_from_channel(
            channel, channel_order("1001", [line("L1", 2, sku="TSHIRT-M", price="19.90")])
        )
        await service.create_or_update_from_channel(
            channel, channel_order("1002", [line("L1", 2, sku="TSHIRT-M")], minutes=1)
        )
        await service.create_or_update_from_channel(
            channel, channel_order("1003", [line("L1", 1, sku="UNKNOWN")], minutes=2)
        )
    return str(channel.id)


async def test_list_filters_and_paginates(
    api: httpx.AsyncClient, database: TestDatabase, tenant: Tenant
) -> None:
    channel_id = await _seed(database, tenant)

    everything = (await api.get("/api/v1/orders")).json()
    assert [(o["external_order_id"], o["status"]) for o in everything["items"]] == [
        ("1001", "RESERVED"),
        ("1002", "PARTIALLY_RESERVED"),
        ("1003", "NEEDS_ATTENTION"),
    ]
    assert everything["next_cursor"] is None

    by_status = (await api.get("/api/v1/orders", params={"status": "NEEDS_ATTENTION"})).json()
    assert [o["external_order_id"] for o in by_status["items"]] == ["1003"]
    by_external = (
        await api.get(
            "/api/v1/orders", params={"channel_id": channel_id, "external_order_id": "1002"}
        )
    ).json()
    assert [o["external_order_id"] for o in by_external["items"]] == ["1002"]

    first = (await api.get("/api/v1/orders", params={"limit": 2})).json()
    second = (
        await api.get("/api/v1/orders", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [o["external_order_id"] for o in first["items"] + second["items"]] == [
        "1001",
        "1002",
        "1003",
    ]
    assert second["next_cursor"] is None


async def test_unknown_status_filter_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/orders", params={"status": "SHIPPED"})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "query.status"


async def test_order_detail(api: httpx.AsyncClient, database: TestDatabase, tenant: Tenant) -> None:
    await _seed(database, tenant)
    order_id = (await api.get("/api/v1/orders", params={"external_order_id": "1001"})).json()[
        "items"
    ][0]["id"]

    detail = (await api.get(f"/api/v1/orders/{order_id}")).json()

    assert detail["external_order_id"] == "1001"
    assert detail["name"] == "#1001"
    assert (detail["status"], detail["payment_status"]) == ("RESERVED", "paid")
    assert (detail["currency"], detail["total_price"]) == ("EUR", "20.00")
    assert detail["customer"] == {"email": "buyer@example.com"}
    assert detail["shipping_address"] == {"city": "Berlin", "country_code": "DE"}
    assert [
        (i["external_item_id"], i["sku"], i["quantity"], i["reserved_quantity"], i["price"])
        for i in detail["items"]
    ] == [("L1", "TSHIRT-M", 2, 2, "19.90")]
    assert [
        (i["fulfilled_quantity"], i["channel_fulfilled_quantity"], i["open_quantity"])
        for i in detail["items"]
    ] == [(0, 0, 2)]
    assert [
        (r["sku"], r["warehouse"], r["quantity"], r["released_at"]) for r in detail["reservations"]
    ] == [("TSHIRT-M", "MAIN", 2, None)]
    assert [(m["sku"], m["reserved_delta"], m["reason"]) for m in detail["ledger"]] == [
        ("TSHIRT-M", 2, "reservation")
    ]
    assert detail["fulfillments"] == []


async def test_other_organisation_gets_404_and_empty_lists(
    client: httpx.AsyncClient, database: TestDatabase, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _seed(database, tenant)
    listed = (await client.get("/api/v1/orders", headers=tenant.headers)).json()
    order_id = listed["items"][0]["id"]

    response = await client.get(f"/api/v1/orders/{order_id}", headers=other_tenant.headers)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "order not found"}
    empty = await client.get("/api/v1/orders", headers=other_tenant.headers)
    assert empty.json() == {"items": [], "next_cursor": None}


async def test_malformed_order_id_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/orders/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "path.order_id"
