"""The catalog's service functions other domains call, and the change hook."""

import uuid
from typing import Any

import httpx
import pytest

from rappit.catalog import service as catalog_service
from rappit.catalog.service import (
    find_listings_by_inventory_item_ids,
    find_listings_by_variant_ids,
    find_listings_for_skus,
    find_skus_by_codes,
)
from rappit.kit.db import unit_of_work
from tests.channels.factories import create_channel
from tests.conftest import Tenant, TestDatabase


@pytest.fixture
def catalog_changes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[uuid.UUID, list[uuid.UUID]]]:
    calls: list[tuple[uuid.UUID, list[uuid.UUID]]] = []

    async def record(session: Any, organization_id: uuid.UUID, sku_ids: list[uuid.UUID]) -> None:
        calls.append((organization_id, list(sku_ids)))

    monkeypatch.setattr(catalog_service, "on_catalog_changed", record)
    return calls


async def test_hook_runs_after_skus_and_listings_are_created(
    api: httpx.AsyncClient,
    tenant: Tenant,
    catalog_changes: list[tuple[uuid.UUID, list[uuid.UUID]]],
) -> None:
    product = (
        await api.post(
            "/api/v1/products", json={"title": "Tee", "skus": [{"code": "A"}, {"code": "B"}]}
        )
    ).json()
    sku_ids = [uuid.UUID(s["id"]) for s in product["skus"]]
    assert catalog_changes == [(tenant.organization_id, sku_ids)]

    added = (await api.post(f"/api/v1/products/{product['id']}/skus", json={"code": "C"})).json()
    assert catalog_changes[-1] == (tenant.organization_id, [uuid.UUID(added["id"])])

    channel = await create_channel(api)
    await api.post(
        f"/api/v1/channels/{channel['id']}/listings", json={"sku": "B", "external_variant_id": "1"}
    )
    assert catalog_changes[-1] == (tenant.organization_id, [sku_ids[1]])
    assert len(catalog_changes) == 3


async def test_hook_does_not_run_for_refused_or_empty_writes(
    api: httpx.AsyncClient, catalog_changes: list[tuple[uuid.UUID, list[uuid.UUID]]]
) -> None:
    await api.post("/api/v1/products", json={"title": "Gift card"})
    product = (
        await api.post("/api/v1/products", json={"title": "Tee", "skus": [{"code": "A"}]})
    ).json()
    assert len(catalog_changes) == 1
    assert (
        await api.post("/api/v1/products", json={"title": "T", "skus": [{"code": "A"}]})
    ).status_code == 409
    assert (
        await api.post(f"/api/v1/products/{product['id']}/skus", json={"code": "A"})
    ).status_code == 409
    channel = await create_channel(api)
    url = f"/api/v1/channels/{channel['id']}/listings"
    assert (await api.post(url, json={"sku": "A", "external_variant_id": "1"})).status_code == 201
    assert (await api.post(url, json={"sku": "A", "external_variant_id": "1"})).status_code == 409
    assert len(catalog_changes) == 2


async def test_lookup_helpers_are_scoped(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, database: TestDatabase
) -> None:
    ours = (
        await client.post(
            "/api/v1/products",
            json={"title": "Tee", "skus": [{"code": "A"}, {"code": "B"}]},
            headers=tenant.headers,
        )
    ).json()
    await client.post(
        "/api/v1/products",
        json={"title": "Tee", "skus": [{"code": "A"}]},
        headers=other_tenant.headers,
    )
    channel = await create_channel(client, tenant.headers)
    second = await create_channel(client, tenant.headers, shop_domain="second.myshopify.com")
    listings = {}
    for channel_id, sku, variant, item in (
        (channel["id"], "A", "11", "111"),
        (channel["id"], "B", "12", None),
        (second["id"], "A", "11", "111"),
    ):
        response = await client.post(
            f"/api/v1/channels/{channel_id}/listings",
            json={"sku": sku, "external_variant_id": variant, "external_inventory_item_id": item},
            headers=tenant.headers,
        )
        listings[(channel_id, sku)] = uuid.UUID(response.json()["id"])
    sku_a, sku_b = (uuid.UUID(s["id"]) for s in ours["skus"])
    channel_id, second_id = uuid.UUID(channel["id"]), uuid.UUID(second["id"])
    org, other_org = tenant.organization_id, other_tenant.organization_id

    async with unit_of_work(database.sessionmaker) as session:
        skus = await find_skus_by_codes(session, org, ["A", "B", "NOPE"])
        assert {code: sku.id for code, sku in skus.items()} == {"A": sku_a, "B": sku_b}
        other_skus = await find_skus_by_codes(session, other_org, ["A", "B"])
        assert list(other_skus) == ["A"]
        assert other_skus["A"].id != sku_a
        assert await find_skus_by_codes(session, org, []) == {}

        by_variant = await find_listings_by_variant_ids(session, org, channel_id, ["11", "12", "9"])
        assert {k: v.sku_id for k, v in by_variant.items()} == {"11": sku_a, "12": sku_b}
        assert await find_listings_by_variant_ids(session, other_org, channel_id, ["11"]) == {}

        by_item = await find_listings_by_inventory_item_ids(session, org, second_id, ["111"])
        assert {k: v.id for k, v in by_item.items()} == {"111": listings[(second["id"], "A")]}
        assert (
            await find_listings_by_inventory_item_ids(session, other_org, second_id, ["111"]) == {}
        )

        everywhere = await find_listings_for_skus(session, org, [sku_a])
        assert [row.id for row in everywhere] == [
            listings[(channel["id"], "A")],
            listings[(second["id"], "A")],
        ]
        on_one = await find_listings_for_skus(session, org, [sku_a, sku_b], channel_id=channel_id)
        assert [row.id for row in on_one] == [
            listings[(channel["id"], "A")],
            listings[(channel["id"], "B")],
        ]
        assert await find_listings_for_skus(session, other_org, [sku_a]) == []
