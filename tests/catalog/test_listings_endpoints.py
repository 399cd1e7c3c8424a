import uuid
from typing import Any

import httpx
import pytest

from tests.channels.factories import create_channel
from tests.conftest import Tenant


async def _setup(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **channel: Any
) -> tuple[str, list[dict[str, Any]]]:
    """A channel and a product with SKUs TEE-S and TEE-M; returns the channel id and SKUs."""
    created = await create_channel(client, headers, **channel)
    product = await client.post(
        "/api/v1/products",
        json={"title": "Tee", "skus": [{"code": "TEE-S"}, {"code": "TEE-M"}]},
        headers=headers,
    )
    assert product.status_code == 201
    return created["id"], product.json()["skus"]


async def test_create_listing(api: httpx.AsyncClient) -> None:
    channel_id, _ = await _setup(api)
    response = await api.post(
        f"/api/v1/channels/{channel_id}/listings",
        json={
            "sku": "TEE-S",
            "external_product_id": "gid://shopify/Product/1",
            "external_variant_id": 11,
            "external_inventory_item_id": " 111 ",
        },
    )
    assert response.status_code == 201
    body = response.json()
    uuid.UUID(body.pop("id"))
    assert body == {
        "channel_id": channel_id,
        "sku": "TEE-S",
        "external_product_id": "gid://shopify/Product/1",
        "external_variant_id": "11",
        "external_inventory_item_id": "111",
    }


@pytest.mark.parametrize(
    "ids",
    [
        {"external_product_id": "1"},
        {"external_variant_id": "1"},
        {"external_inventory_item_id": "1"},
    ],
)
async def test_one_external_id_is_enough(api: httpx.AsyncClient, ids: dict[str, str]) -> None:
    channel_id, _ = await _setup(api)
    response = await api.post(
        f"/api/v1/channels/{channel_id}/listings", json={"sku": "TEE-S"} | ids
    )
    assert response.status_code == 201
    body = response.json()
    for field in ("external_product_id", "external_variant_id", "external_inventory_item_id"):
        assert body[field] == ids.get(field)


async def test_listing_without_external_id_is_422(api: httpx.AsyncClient) -> None:
    channel_id, _ = await _setup(api)
    message = (
        "Value error, give at least one of 'external_product_id', 'external_variant_id' or "
        "'external_inventory_item_id'"
    )
    for body in ({"sku": "TEE-S"}, {"sku": "TEE-S", "external_variant_id": None}):
        response = await api.post(f"/api/v1/channels/{channel_id}/listings", json=body)
        assert response.status_code == 422
        assert response.json() == {
            "error": "validation_error",
            "detail": f"body: {message}",
            "fields": [{"field": "body", "message": message}],
        }


async def test_blank_fields_are_422(api: httpx.AsyncClient) -> None:
    channel_id, _ = await _setup(api)
    response = await api.post(
        f"/api/v1/channels/{channel_id}/listings",
        json={"sku": " ", "external_variant_id": ""},
    )
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {"field": "body.sku", "message": "String should have at least 1 character"},
        {"field": "body.external_variant_id", "message": "String should have at least 1 character"},
    ]


async def test_unknown_sku_is_404(api: httpx.AsyncClient) -> None:
    channel_id, _ = await _setup(api)
    response = await api.post(
        f"/api/v1/channels/{channel_id}/listings", json={"sku": "NOPE", "external_variant_id": "1"}
    )
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "SKU 'NOPE' does not exist"}


async def test_unknown_channel_is_404(api: httpx.AsyncClient) -> None:
    await _setup(api)
    missing = uuid.uuid4()
    expected = {"error": "not_found", "detail": f"channel '{missing}' does not exist"}
    for response in (
        await api.post(
            f"/api/v1/channels/{missing}/listings",
            json={"sku": "TEE-S", "external_variant_id": "1"},
        ),
        await api.get(f"/api/v1/channels/{missing}/listings"),
    ):
        assert response.status_code == 404
        assert response.json() == expected


async def test_external_ids_are_unique_per_channel(api: httpx.AsyncClient) -> None:
    channel_id, _ = await _setup(api)
    url = f"/api/v1/channels/{channel_id}/listings"
    first = await api.post(
        url, json={"sku": "TEE-S", "external_variant_id": "11", "external_inventory_item_id": "111"}
    )
    assert first.status_code == 201

    same_variant = await api.post(url, json={"sku": "TEE-M", "external_variant_id": "11"})
    assert same_variant.status_code == 409
    assert same_variant.json() == {
        "error": "conflict",
        "detail": "external variant id '11' is already listed on this channel for SKU 'TEE-S'",
    }

    same_item = await api.post(
        url, json={"sku": "TEE-M", "external_variant_id": "12", "external_inventory_item_id": "111"}
    )
    assert same_item.status_code == 409
    assert same_item.json() == {
        "error": "conflict",
        "detail": (
            "external inventory item id '111' is already listed on this channel for SKU 'TEE-S'"
        ),
    }

    # Product ids are shared by a product's variants, so they may repeat.
    for sku in ("TEE-S", "TEE-M"):
        shared = await api.post(url, json={"sku": sku, "external_product_id": "1"})
        assert shared.status_code == 201

    listed = (await api.get(url)).json()
    assert [(i["sku"], i["external_variant_id"]) for i in listed["items"]] == [
        ("TEE-S", "11"),
        ("TEE-S", None),
        ("TEE-M", None),
    ]


async def test_same_external_ids_on_another_channel(api: httpx.AsyncClient) -> None:
    channel_id, _ = await _setup(api)
    other = await create_channel(api, shop_domain="second.myshopify.com")
    body = {"sku": "TEE-S", "external_variant_id": "11", "external_inventory_item_id": "111"}
    assert (await api.post(f"/api/v1/channels/{channel_id}/listings", json=body)).status_code == 201
    again = await api.post(f"/api/v1/channels/{other['id']}/listings", json=body)
    assert again.status_code == 201
    assert again.json()["channel_id"] == other["id"]


async def test_listings_are_paginated(api: httpx.AsyncClient) -> None:
    channel_id, _ = await _setup(api)
    url = f"/api/v1/channels/{channel_id}/listings"
    created = [
        (
            await api.post(
                url, json={"sku": "TEE-S" if i % 2 else "TEE-M", "external_variant_id": str(i)}
            )
        ).json()
        for i in range(3)
    ]
    first = (await api.get(url, params={"limit": 2})).json()
    assert first["items"] == created[:2]
    second = (await api.get(url, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert second == {"items": created[2:], "next_cursor": None}


async def test_other_organisation_cannot_use_a_channel_or_sku(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    channel_id, _ = await _setup(client, tenant.headers)
    url = f"/api/v1/channels/{channel_id}/listings"
    await client.post(
        url, json={"sku": "TEE-S", "external_variant_id": "11"}, headers=tenant.headers
    )

    # The other organisation has its own SKU with the same code, and its own channel.
    other_channel, _ = await _setup(
        client, other_tenant.headers, type="woocommerce", shop_domain="other.example.com"
    )
    not_theirs = {"error": "not_found", "detail": f"channel '{channel_id}' does not exist"}
    for response in (
        await client.post(
            url, json={"sku": "TEE-S", "external_variant_id": "12"}, headers=other_tenant.headers
        ),
        await client.get(url, headers=other_tenant.headers),
    ):
        assert response.status_code == 404
        assert response.json() == not_theirs

    # A SKU code of the first organisation means nothing to the second.
    await client.post(
        "/api/v1/products",
        json={"title": "Only ours", "skus": [{"code": "OURS"}]},
        headers=tenant.headers,
    )
    response = await client.post(
        f"/api/v1/channels/{other_channel}/listings",
        json={"sku": "OURS", "external_variant_id": "1"},
        headers=other_tenant.headers,
    )
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "SKU 'OURS' does not exist"}
    listed = (await client.get(url, headers=tenant.headers)).json()
    assert [i["external_variant_id"] for i in listed["items"]] == ["11"]
