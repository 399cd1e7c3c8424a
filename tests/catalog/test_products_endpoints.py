import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant


async def _create_product(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await client.post("/api/v1/products", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _list_all(api: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    page = (await api.get(path, params={"limit": 200})).json()
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_create_product_with_skus(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/products",
        json={
            "title": " T-shirt ",
            "skus": [{"code": "TEE-S", "title": "Small"}, {"code": " TEE-M "}],
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "title", "skus", "created_at"}
    assert body["title"] == "T-shirt"
    assert [(s["code"], s["title"]) for s in body["skus"]] == [("TEE-S", "Small"), ("TEE-M", None)]
    assert all(set(s) == {"id", "code", "title"} for s in body["skus"])

    fetched = await api.get(f"/api/v1/products/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body

    skus = await _list_all(api, "/api/v1/skus")
    assert skus == [
        {"id": s["id"], "code": s["code"], "title": s["title"], "product_id": body["id"]}
        for s in body["skus"]
    ]


async def test_product_without_skus(api: httpx.AsyncClient) -> None:
    body = await _create_product(api, {"title": "Gift card"})
    assert body["skus"] == []
    assert (await api.get(f"/api/v1/products/{body['id']}")).json()["skus"] == []


async def test_code_repeated_in_the_request_is_409_and_writes_nothing(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/api/v1/products",
        json={"title": "Tee", "skus": [{"code": "A"}, {"code": "B"}, {"code": " A"}]},
    )
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "SKU code 'A' appears more than once in the request",
        "codes": ["A"],
    }
    response = await api.post(
        "/api/v1/products",
        json={"title": "Tee", "skus": [{"code": c} for c in ["B", "A", "B", "A", "C"]]},
    )
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "SKU codes 'A', 'B' appear more than once in the request",
        "codes": ["A", "B"],
    }
    assert await _list_all(api, "/api/v1/products") == []
    assert await _list_all(api, "/api/v1/skus") == []


async def test_existing_code_is_409_and_writes_nothing(api: httpx.AsyncClient) -> None:
    first = await _create_product(api, {"title": "Tee", "skus": [{"code": "A"}, {"code": "B"}]})
    response = await api.post(
        "/api/v1/products", json={"title": "Other", "skus": [{"code": "C"}, {"code": "A"}]}
    )
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "SKU code 'A' already exists",
        "codes": ["A"],
    }
    response = await api.post(
        "/api/v1/products",
        json={"title": "Other", "skus": [{"code": "B"}, {"code": "D"}, {"code": "A"}]},
    )
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "SKU codes 'B', 'A' already exist",
        "codes": ["B", "A"],
    }
    assert await _list_all(api, "/api/v1/products") == [first]
    assert [s["code"] for s in await _list_all(api, "/api/v1/skus")] == ["A", "B"]


async def test_codes_are_case_sensitive(api: httpx.AsyncClient) -> None:
    body = await _create_product(api, {"title": "Tee", "skus": [{"code": "a"}, {"code": "A"}]})
    assert [s["code"] for s in body["skus"]] == ["a", "A"]


async def test_codes_are_unique_per_organisation_only(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _create_product(client, {"title": "Tee", "skus": [{"code": "A"}]}, tenant.headers)
    other = await _create_product(
        client, {"title": "Tee", "skus": [{"code": "A"}]}, other_tenant.headers
    )
    assert [s["code"] for s in other["skus"]] == ["A"]


async def test_concurrent_creates_of_one_code_yield_one_sku(api: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(
            api.post("/api/v1/products", json={"title": f"P{i}", "skus": [{"code": "RACE"}]})
            for i in range(4)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["detail"] == "SKU code 'RACE' already exists"
    assert [s["code"] for s in await _list_all(api, "/api/v1/skus")] == ["RACE"]
    assert len(await _list_all(api, "/api/v1/products")) == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"title": "T", "skus": [{"code": ""}]}, "body.skus.0.code", "at least 1 character"),
        (
            {"title": "T", "skus": [{"code": "A"}, {"code": "   "}]},
            "body.skus.1.code",
            "at least 1 character",
        ),
        ({"title": "T", "skus": [{"title": "x"}]}, "body.skus.0.code", "Field required"),
        ({"title": " ", "skus": []}, "body.title", "at least 1 character"),
        ({"skus": []}, "body.title", "Field required"),
        (
            {"title": "T", "skus": [{"code": "A", "title": "  "}]},
            "body.skus.0.title",
            "at least 1 character",
        ),
        ({"title": "T", "skus": [{"code": "x" * 129}]}, "body.skus.0.code", "at most 128"),
    ],
)
async def test_invalid_product_is_422(
    api: httpx.AsyncClient, body: dict[str, Any], field: str, message: str
) -> None:
    response = await api.post("/api/v1/products", json=body)
    assert response.status_code == 422
    full = {
        "at least 1 character": "String should have at least 1 character",
        "at most 128": "String should have at most 128 characters",
        "Field required": "Field required",
    }[message]
    assert response.json() == {
        "error": "validation_error",
        "detail": f"{field}: {full}",
        "fields": [{"field": field, "message": full}],
    }
    assert await _list_all(api, "/api/v1/products") == []


async def test_list_products_walks_every_page_with_skus(api: httpx.AsyncClient) -> None:
    created = [
        await _create_product(
            api, {"title": f"P{i}", "skus": [{"code": f"P{i}-A"}, {"code": f"P{i}-B"}]}
        )
        for i in range(5)
    ]
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await api.get("/api/v1/products", params=params)
        assert response.status_code == 200
        page = response.json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created


async def test_list_products_bad_cursor_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/products", params={"cursor": "!!"})
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_input",
        "detail": "cursor is not valid; pass the next_cursor of a previous page",
    }


async def test_unknown_product_is_404(api: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    expected = {"error": "not_found", "detail": f"product '{missing}' does not exist"}
    for response in (
        await api.get(f"/api/v1/products/{missing}"),
        await api.post(f"/api/v1/products/{missing}/skus", json={"code": "A"}),
    ):
        assert response.status_code == 404
        assert response.json() == expected


async def test_malformed_product_id_is_422(api: httpx.AsyncClient) -> None:
    for response in (
        await api.get("/api/v1/products/42"),
        await api.post("/api/v1/products/42/skus", json={"code": "A"}),
    ):
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "validation_error"
        assert [f["field"] for f in body["fields"]] == ["path.product_id"]


async def test_add_sku_to_product(api: httpx.AsyncClient) -> None:
    product = await _create_product(api, {"title": "Tee", "skus": [{"code": "TEE-S"}]})
    response = await api.post(
        f"/api/v1/products/{product['id']}/skus", json={"code": " TEE-L ", "title": "Large"}
    )
    assert response.status_code == 201
    sku = response.json()
    uuid.UUID(sku.pop("id"))
    assert sku == {"code": "TEE-L", "title": "Large", "product_id": product["id"]}
    fetched = (await api.get(f"/api/v1/products/{product['id']}")).json()
    assert [s["code"] for s in fetched["skus"]] == ["TEE-S", "TEE-L"]


async def test_add_existing_sku_is_409(api: httpx.AsyncClient) -> None:
    await _create_product(api, {"title": "Tee", "skus": [{"code": "A"}]})
    other = await _create_product(api, {"title": "Cap"})
    response = await api.post(f"/api/v1/products/{other['id']}/skus", json={"code": "A"})
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "SKU code 'A' already exists",
        "codes": ["A"],
    }
    assert (await api.get(f"/api/v1/products/{other['id']}")).json()["skus"] == []


async def test_add_blank_sku_is_422(api: httpx.AsyncClient) -> None:
    product = await _create_product(api, {"title": "Tee"})
    response = await api.post(f"/api/v1/products/{product['id']}/skus", json={"code": " "})
    assert response.status_code == 422
    assert response.json() == {
        "error": "validation_error",
        "detail": "body.code: String should have at least 1 character",
        "fields": [{"field": "body.code", "message": "String should have at least 1 character"}],
    }


async def test_sku_filter_by_code(api: httpx.AsyncClient) -> None:
    product = await _create_product(
        api, {"title": "Tee", "skus": [{"code": "TEE-S"}, {"code": "TEE-M"}]}
    )
    response = await api.get("/api/v1/skus", params={"code": "TEE-M"})
    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "id": product["skus"][1]["id"],
                "code": "TEE-M",
                "title": None,
                "product_id": product["id"],
            }
        ],
        "next_cursor": None,
    }
    for code in ("TEE", "tee-m", "NOPE"):
        assert (await api.get("/api/v1/skus", params={"code": code})).json() == {
            "items": [],
            "next_cursor": None,
        }


async def test_skus_are_paginated(api: httpx.AsyncClient) -> None:
    await _create_product(api, {"title": "Tee", "skus": [{"code": f"S{i}"} for i in range(5)]})
    first = (await api.get("/api/v1/skus", params={"limit": 3})).json()
    assert [s["code"] for s in first["items"]] == ["S0", "S1", "S2"]
    second = (
        await api.get("/api/v1/skus", params={"limit": 3, "cursor": first["next_cursor"]})
    ).json()
    assert [s["code"] for s in second["items"]] == ["S3", "S4"]
    assert second["next_cursor"] is None


async def test_other_organisation_sees_no_catalog(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    product = await _create_product(
        client, {"title": "Tee", "skus": [{"code": "A"}]}, tenant.headers
    )
    other = other_tenant.headers
    expected = {"error": "not_found", "detail": f"product '{product['id']}' does not exist"}
    for response in (
        await client.get(f"/api/v1/products/{product['id']}", headers=other),
        await client.post(
            f"/api/v1/products/{product['id']}/skus", json={"code": "B"}, headers=other
        ),
    ):
        assert response.status_code == 404
        assert response.json() == expected
    empty: dict[str, Any] = {"items": [], "next_cursor": None}
    assert (await client.get("/api/v1/products", headers=other)).json() == empty
    assert (await client.get("/api/v1/skus", headers=other)).json() == empty
    assert (await client.get("/api/v1/skus", params={"code": "A"}, headers=other)).json() == empty
    mine = (await client.get(f"/api/v1/products/{product['id']}", headers=tenant.headers)).json()
    assert mine == product


async def test_no_key_is_401(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/v1/products"),
        await client.post("/api/v1/products", json={"title": "T"}),
        await client.get("/api/v1/skus"),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
