import uuid

import httpx

from rappit.channels.service import warehouse_for_location
from rappit.kit.db import unit_of_work
from tests.channels.factories import create_channel, create_warehouse
from tests.conftest import Tenant, TestDatabase


async def test_map_a_location_to_a_warehouse(api: httpx.AsyncClient) -> None:
    channel = await create_channel(api)
    await create_warehouse(api, "BER")
    response = await api.post(
        f"/api/v1/channels/{channel['id']}/locations",
        json={"external_location_id": " 655441491 ", "warehouse": "BER"},
    )
    assert response.status_code == 201
    body = response.json()
    uuid.UUID(body.pop("id"))
    assert body == {
        "channel_id": channel["id"],
        "external_location_id": "655441491",
        "warehouse": "BER",
        "stock_master": "rappit",
    }


async def test_a_location_can_make_the_channel_the_stock_master(api: httpx.AsyncClient) -> None:
    channel = await create_channel(api)
    await create_warehouse(api, "BER")
    url = f"/api/v1/channels/{channel['id']}/locations"
    response = await api.post(
        url, json={"external_location_id": "1", "warehouse": "BER", "stock_master": "channel"}
    )
    assert response.status_code == 201
    assert response.json()["stock_master"] == "channel"
    bad = await api.post(
        url, json={"external_location_id": "2", "warehouse": "BER", "stock_master": "both"}
    )
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "body.stock_master"


async def test_numeric_external_id_is_kept_as_text(api: httpx.AsyncClient) -> None:
    channel = await create_channel(api)
    await create_warehouse(api, "BER")
    response = await api.post(
        f"/api/v1/channels/{channel['id']}/locations",
        json={"external_location_id": 655441491, "warehouse": "BER"},
    )
    assert response.status_code == 201
    assert response.json()["external_location_id"] == "655441491"


async def test_unknown_warehouse_is_404(api: httpx.AsyncClient) -> None:
    channel = await create_channel(api)
    response = await api.post(
        f"/api/v1/channels/{channel['id']}/locations",
        json={"external_location_id": "1", "warehouse": "NOPE"},
    )
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "warehouse 'NOPE' does not exist"}


async def test_another_organisations_warehouse_is_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    channel = await create_channel(client, tenant.headers)
    await create_warehouse(client, "FOREIGN", other_tenant.headers)
    response = await client.post(
        f"/api/v1/channels/{channel['id']}/locations",
        json={"external_location_id": "1", "warehouse": "FOREIGN"},
        headers=tenant.headers,
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "warehouse 'FOREIGN' does not exist",
    }


async def test_same_location_twice_on_a_channel_is_409(api: httpx.AsyncClient) -> None:
    channel = await create_channel(api)
    other_channel = await create_channel(api, shop_domain="second.myshopify.com")
    await create_warehouse(api, "BER")
    await create_warehouse(api, "MUC")
    url = f"/api/v1/channels/{channel['id']}/locations"
    assert (
        await api.post(url, json={"external_location_id": "1", "warehouse": "BER"})
    ).status_code == 201
    response = await api.post(url, json={"external_location_id": "1", "warehouse": "MUC"})
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": f"location '1' is already mapped on channel '{channel['id']}'",
    }
    # The same external id on another channel is another location.
    elsewhere = await api.post(
        f"/api/v1/channels/{other_channel['id']}/locations",
        json={"external_location_id": "1", "warehouse": "MUC"},
    )
    assert elsewhere.status_code == 201
    listed = (await api.get(url)).json()
    assert [(i["external_location_id"], i["warehouse"]) for i in listed["items"]] == [("1", "BER")]


async def test_invalid_location_body_is_422(api: httpx.AsyncClient) -> None:
    channel = await create_channel(api)
    response = await api.post(
        f"/api/v1/channels/{channel['id']}/locations",
        json={"external_location_id": "  ", "warehouse": ""},
    )
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {
            "field": "body.external_location_id",
            "message": "String should have at least 1 character",
        },
        {"field": "body.warehouse", "message": "String should have at least 1 character"},
    ]


async def test_list_locations_is_paginated(api: httpx.AsyncClient) -> None:
    channel = await create_channel(api)
    await create_warehouse(api, "BER")
    await create_warehouse(api, "MUC")
    url = f"/api/v1/channels/{channel['id']}/locations"
    created = [
        (await api.post(url, json={"external_location_id": str(i), "warehouse": code})).json()
        for i, code in enumerate(["BER", "MUC", "BER"])
    ]
    first = (await api.get(url, params={"limit": 2})).json()
    assert first["items"] == created[:2]
    second = (await api.get(url, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert second == {"items": created[2:], "next_cursor": None}


async def test_other_organisation_sees_no_locations(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    channel = await create_channel(client, tenant.headers)
    await create_warehouse(client, "BER", tenant.headers)
    await create_warehouse(client, "BER", other_tenant.headers)
    url = f"/api/v1/channels/{channel['id']}/locations"
    await client.post(
        url, json={"external_location_id": "1", "warehouse": "BER"}, headers=tenant.headers
    )
    response = await client.post(
        url, json={"external_location_id": "2", "warehouse": "BER"}, headers=other_tenant.headers
    )
    assert response.status_code == 404
    assert (await client.get(url, headers=other_tenant.headers)).status_code == 404
    listed = (await client.get(url, headers=tenant.headers)).json()
    assert [i["external_location_id"] for i in listed["items"]] == ["1"]


async def test_warehouse_for_location(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, database: TestDatabase
) -> None:
    channel = await create_channel(client, tenant.headers)
    warehouse = await create_warehouse(client, "BER", tenant.headers)
    await client.post(
        f"/api/v1/channels/{channel['id']}/locations",
        json={"external_location_id": "77", "warehouse": "BER"},
        headers=tenant.headers,
    )
    channel_id = uuid.UUID(channel["id"])
    async with unit_of_work(database.sessionmaker) as session:
        found = await warehouse_for_location(session, tenant.organization_id, channel_id, "77")
        assert found == uuid.UUID(warehouse["id"])
        assert (
            await warehouse_for_location(session, tenant.organization_id, channel_id, "78") is None
        )
        assert (
            await warehouse_for_location(session, other_tenant.organization_id, channel_id, "77")
            is None
        )
