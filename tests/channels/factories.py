"""Request bodies and calls shared by the channel and catalog tests."""

from __future__ import annotations

from typing import Any

import httpx

ACCESS_TOKEN = "shpat_" + "0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec-test-1234567890abcdef"


def channel_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "shopify",
        "name": "Acme Shopify",
        "shop_domain": "acme.myshopify.com",
        "access_token": ACCESS_TOKEN,
        "webhook_secret": WEBHOOK_SECRET,
    }
    return body | overrides


async def create_channel(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/channels", json=channel_body(**overrides), headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_warehouse(
    client: httpx.AsyncClient, code: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/warehouses", json={"code": code, "name": code}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
