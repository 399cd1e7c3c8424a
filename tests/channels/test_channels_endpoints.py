import uuid
from typing import Any

import httpx
import pytest

from tests.channels.factories import channel_body, create_channel
from tests.conftest import Tenant

CHANNEL_FIELDS = {
    "id",
    "type",
    "name",
    "shop_domain",
    "status",
    "api_version",
    "api_base_url",
    "settings",
    "created_at",
}


def _without_generated(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("id", "created_at")}


async def test_create_shopify_channel(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/channels", json=channel_body())
    assert response.status_code == 201
    body = response.json()
    assert set(body) == CHANNEL_FIELDS
    uuid.UUID(body["id"])
    assert _without_generated(body) == {
        "type": "shopify",
        "name": "Acme Shopify",
        "shop_domain": "acme.myshopify.com",
        "status": "active",
        "api_version": "2026-10",
        "api_base_url": None,
        "settings": {"reserve_on_authorized": False},
    }


async def test_create_with_every_optional_field(api: httpx.AsyncClient) -> None:
    body = await create_channel(
        api,
        name="  Sandbox  ",
        api_version="2025-07",
        api_base_url="http://127.0.0.1:8081/",
        settings={"reserve_on_authorized": True},
    )
    assert _without_generated(body) == {
        "type": "shopify",
        "name": "Sandbox",
        "shop_domain": "acme.myshopify.com",
        "status": "active",
        "api_version": "2025-07",
        "api_base_url": "http://127.0.0.1:8081",
        "settings": {"reserve_on_authorized": True},
    }


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Acme.MyShopify.com", "acme.myshopify.com"),
        ("https://acme.myshopify.com", "acme.myshopify.com"),
        ("https://ACME-store.myshopify.com/admin/orders?x=1", "acme-store.myshopify.com"),
        ("http://acme.myshopify.com/", "acme.myshopify.com"),
        ("  acme.myshopify.com/  ", "acme.myshopify.com"),
    ],
)
async def test_shopify_domain_is_normalised(
    api: httpx.AsyncClient, given: str, stored: str
) -> None:
    body = await create_channel(api, shop_domain=given)
    assert body["shop_domain"] == stored


@pytest.mark.parametrize(
    "given",
    [
        "acme.com",
        "acme",
        "",
        "ftp://acme.myshopify.com",
        "acme.myshopify.com.evil.example",
        "acme.myshopify.com:8443",
        "user@acme.myshopify.com",
        "-acme.myshopify.com",
    ],
)
async def test_invalid_shopify_domain_is_422(api: httpx.AsyncClient, given: str) -> None:
    response = await api.post("/api/v1/channels", json=channel_body(shop_domain=given))
    assert response.status_code == 422
    message = (
        "Value error, must be the shop's myshopify.com domain, e.g. 'acme.myshopify.com'"
        if not given.startswith("ftp")
        else "Value error, must be a host name, not a URL with another scheme than https"
    )
    assert response.json() == {
        "error": "validation_error",
        "detail": f"body.shop_domain: {message}",
        "fields": [{"field": "body.shop_domain", "message": message}],
    }


async def test_woocommerce_channel(api: httpx.AsyncClient) -> None:
    body = await create_channel(
        api, type="woocommerce", name="Woo", shop_domain="https://Shop.Example.com/"
    )
    assert _without_generated(body) == {
        "type": "woocommerce",
        "name": "Woo",
        "shop_domain": "shop.example.com",
        "status": "active",
        "api_version": None,
        "api_base_url": None,
        "settings": {"reserve_on_authorized": False},
    }


async def test_woocommerce_domain_must_be_a_host(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/channels", json=channel_body(type="woocommerce", shop_domain="not a host")
    )
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {
            "field": "body.shop_domain",
            "message": "Value error, must be the shop's host name, e.g. 'shop.example.com'",
        }
    ]


async def test_unknown_type_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/channels", json=channel_body(type="amazon"))
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {"field": "body.type", "message": "Input should be 'shopify' or 'woocommerce'"}
    ]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"access_token": "   "}, "body.access_token", "Value error, must not be empty"),
        ({"webhook_secret": ""}, "body.webhook_secret", "Value error, must not be empty"),
        (
            {"access_token": "x" * 2001},
            "body.access_token",
            "Value error, must be at most 2000 characters",
        ),
        ({"name": " "}, "body.name", "String should have at least 1 character"),
        (
            {"api_base_url": "ftp://example.com"},
            "body.api_base_url",
            "Value error, must be an http:// or https:// URL",
        ),
        (
            {"api_base_url": "https://user:pw@example.com"},
            "body.api_base_url",
            "Value error, must not carry credentials, a query or a fragment",
        ),
        (
            {"api_version": "2026-10; drop"},
            "body.api_version",
            "String should match pattern '^[A-Za-z0-9][A-Za-z0-9._/\\-]*$'",
        ),
        (
            {"settings": {"reserve_on_authorised": True}},
            "body.settings.reserve_on_authorised",
            "Extra inputs are not permitted",
        ),
    ],
)
async def test_invalid_fields_are_422(
    api: httpx.AsyncClient, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = await api.post("/api/v1/channels", json=channel_body(**overrides))
    assert response.status_code == 422
    assert response.json() == {
        "error": "validation_error",
        "detail": f"{field}: {message}",
        "fields": [{"field": field, "message": message}],
    }


async def test_missing_credentials_are_422(api: httpx.AsyncClient) -> None:
    body = channel_body()
    del body["access_token"], body["webhook_secret"]
    response = await api.post("/api/v1/channels", json=body)
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {"field": "body.access_token", "message": "Field required"},
        {"field": "body.webhook_secret", "message": "Field required"},
    ]


async def test_same_shop_twice_is_409_across_organisations(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create_channel(client, tenant.headers)
    expected = {
        "error": "conflict",
        "detail": "a shopify channel for 'acme.myshopify.com' already exists",
    }
    for headers in (tenant.headers, other_tenant.headers):
        response = await client.post(
            "/api/v1/channels",
            json=channel_body(shop_domain="https://ACME.myshopify.com/"),
            headers=headers,
        )
        assert response.status_code == 409
        assert response.json() == expected
    listed = await client.get("/api/v1/channels", headers=other_tenant.headers)
    assert listed.json() == {"items": [], "next_cursor": None}


async def test_same_domain_with_another_type_is_allowed(api: httpx.AsyncClient) -> None:
    await create_channel(api)
    body = await create_channel(api, type="woocommerce")
    assert (body["type"], body["shop_domain"]) == ("woocommerce", "acme.myshopify.com")


async def test_list_and_get(api: httpx.AsyncClient) -> None:
    created = [
        await create_channel(api, name=f"Shop {i}", shop_domain=f"shop-{i}.myshopify.com")
        for i in range(3)
    ]
    first = await api.get("/api/v1/channels", params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert page["items"] == created[:2]
    assert page["next_cursor"] is not None
    second = (
        await api.get("/api/v1/channels", params={"limit": 2, "cursor": page["next_cursor"]})
    ).json()
    assert second == {"items": created[2:], "next_cursor": None}

    one = await api.get(f"/api/v1/channels/{created[1]['id']}")
    assert one.status_code == 200
    assert one.json() == created[1]


async def test_unknown_channel_is_404(api: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    expected = {"error": "not_found", "detail": f"channel '{missing}' does not exist"}
    for response in (
        await api.get(f"/api/v1/channels/{missing}"),
        await api.patch(f"/api/v1/channels/{missing}", json={"name": "x"}),
        await api.get(f"/api/v1/channels/{missing}/locations"),
        await api.post(
            f"/api/v1/channels/{missing}/locations",
            json={"external_location_id": "1", "warehouse": "BER"},
        ),
    ):
        assert response.status_code == 404
        assert response.json() == expected


async def test_malformed_channel_id_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/channels/not-a-uuid")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert [f["field"] for f in body["fields"]] == ["path.channel_id"]


async def test_patch_changes_only_what_is_given(api: httpx.AsyncClient) -> None:
    created = await create_channel(
        api, api_base_url="http://127.0.0.1:9000", settings={"reserve_on_authorized": True}
    )
    url = f"/api/v1/channels/{created['id']}"

    renamed = await api.patch(url, json={"name": " Renamed "})
    assert renamed.status_code == 200
    assert renamed.json() == created | {"name": "Renamed"}

    changed = await api.patch(
        url, json={"api_version": "2027-01", "settings": {"reserve_on_authorized": False}}
    )
    assert changed.json() == created | {
        "name": "Renamed",
        "api_version": "2027-01",
        "settings": {"reserve_on_authorized": False},
    }

    # null goes back to the type's default.
    reset = await api.patch(url, json={"api_version": None, "api_base_url": None})
    assert reset.json() == created | {
        "name": "Renamed",
        "api_version": "2026-10",
        "api_base_url": None,
        "settings": {"reserve_on_authorized": False},
    }

    unchanged = await api.patch(url, json={})
    assert unchanged.json() == reset.json()
    assert (await api.get(url)).json() == reset.json()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"name": None},
            "body.name",
            "Value error, must not be null; leave the field out to keep it unchanged",
        ),
        (
            {"access_token": None},
            "body.access_token",
            "Value error, must not be null; leave the field out to keep it unchanged",
        ),
        ({"webhook_secret": " "}, "body.webhook_secret", "Value error, must not be empty"),
        (
            {"settings": {"reserve_on_authorized": None}},
            "body.settings.reserve_on_authorized",
            "Value error, must be true or false",
        ),
        ({"settings": {"other": 1}}, "body.settings.other", "Extra inputs are not permitted"),
        (
            {"api_base_url": "not a url"},
            "body.api_base_url",
            "Value error, must be an http:// or https:// URL",
        ),
    ],
)
async def test_invalid_patch_is_422(
    api: httpx.AsyncClient, body: dict[str, Any], field: str, message: str
) -> None:
    created = await create_channel(api)
    response = await api.patch(f"/api/v1/channels/{created['id']}", json=body)
    assert response.status_code == 422
    assert response.json() == {
        "error": "validation_error",
        "detail": f"{field}: {message}",
        "fields": [{"field": field, "message": message}],
    }
    assert (await api.get(f"/api/v1/channels/{created['id']}")).json() == created


async def test_other_organisation_cannot_see_or_change_a_channel(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = await create_channel(client, tenant.headers)
    url = f"/api/v1/channels/{created['id']}"
    expected = {"error": "not_found", "detail": f"channel '{created['id']}' does not exist"}
    other = other_tenant.headers
    for response in (
        await client.get(url, headers=other),
        await client.patch(url, json={"name": "taken over"}, headers=other),
        await client.get(f"{url}/locations", headers=other),
        await client.post(
            f"{url}/locations",
            json={"external_location_id": "1", "warehouse": "BER"},
            headers=other,
        ),
    ):
        assert response.status_code == 404
        assert response.json() == expected
    listed = await client.get("/api/v1/channels", headers=other)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert (await client.get(url, headers=tenant.headers)).json() == created


async def test_no_key_is_401(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/v1/channels"),
        await client.post("/api/v1/channels", json=channel_body()),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
