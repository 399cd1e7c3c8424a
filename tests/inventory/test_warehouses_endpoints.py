import httpx

from tests.conftest import Tenant


async def test_create_and_list_warehouses(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/warehouses", json={"code": "BER", "name": "Berlin"})
    assert response.status_code == 201
    body = response.json()
    assert (body["code"], body["name"], body["priority"]) == ("BER", "Berlin", 100)

    listed = await api.get("/api/v1/warehouses")
    assert listed.status_code == 200
    assert [w["code"] for w in listed.json()["items"]] == ["BER"]
    assert listed.json()["next_cursor"] is None


async def test_duplicate_warehouse_code_is_409(api: httpx.AsyncClient) -> None:
    assert (
        await api.post("/api/v1/warehouses", json={"code": "A", "name": "A"})
    ).status_code == 201
    response = await api.post("/api/v1/warehouses", json={"code": "A", "name": "again"})
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "detail": "warehouse code 'A' already exists"}


async def test_missing_field_names_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/warehouses", json={"code": "A"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["fields"] == [{"field": "body.name", "message": "Field required"}]


async def test_no_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/warehouses")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_bad_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/warehouses", headers={"Authorization": "Bearer rpt_not-a-real-key"}
    )
    assert response.status_code == 401


async def test_pagination_walks_every_page(api: httpx.AsyncClient) -> None:
    for index in range(5):
        await api.post("/api/v1/warehouses", json={"code": f"W{index}", "name": f"W{index}"})
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/api/v1/warehouses", params=params)).json()
        seen += [w["code"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["W0", "W1", "W2", "W3", "W4"]


async def test_bad_cursor_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/warehouses", params={"cursor": "!!"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


async def test_other_organisation_sees_nothing(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await client.post("/api/v1/warehouses", json={"code": "A", "name": "A"}, headers=tenant.headers)
    listed = await client.get("/api/v1/warehouses", headers=other_tenant.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
