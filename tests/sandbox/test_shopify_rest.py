"""The sandbox's REST Admin API over real HTTP: auth, cursor pagination and its rules, order
status, inventory level parameters, fulfilment orders and fulfilments, webhook subscriptions."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from rappit.sandbox.shopify import SandboxServer
from tests.sandbox.conftest import VERSION, ShopHandle, Shops

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
LINK = re.compile(r'<([^>]+)>; rel="(next|previous)"')


def links(response: httpx.Response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("link", ""))}


def all_pages(shop: ShopHandle, path: str, params: dict[str, Any], root: str) -> list[Any]:
    """Follow rel=next to the end; every page but the first is requested by its Link URL."""
    pages = []
    response = shop.api.get(path, params=params)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json()[root])
        following = links(response).get("next")
        if following is None:
            return pages
        response = shop.api.get(following)


# --- auth, shops, versions ---------------------------------------------------------------------


def test_wrong_or_missing_token_is_401_and_unknown_shop_404(
    sandbox: SandboxServer, shops: Shops
) -> None:
    shop = shops.create()
    url = f"{sandbox.shop_url(shop.domain)}/admin/api/{VERSION}/orders.json"
    with httpx.Client(trust_env=False) as client:
        wrong = client.get(url, headers={"X-Shopify-Access-Token": "shpat_wrong"})
        missing = client.get(url)
        unknown = client.get(
            f"{sandbox.base_url}/shops/nobody.myshopify.com/admin/api/{VERSION}/orders.json",
            headers={"X-Shopify-Access-Token": shop.token},
        )
    assert (wrong.status_code, wrong.json()) == (401, {"errors": INVALID_TOKEN})
    assert (missing.status_code, missing.json()) == (401, {"errors": INVALID_TOKEN})
    assert (unknown.status_code, unknown.json()) == (404, {"errors": "Not Found"})


def test_versions_fall_forward_and_unknown_routes_are_404(shops: Shops) -> None:
    shop = shops.create()
    old = shop.api.get(f"{shop.info['api_base_url']}/admin/api/2023-01/shop.json")
    assert old.status_code == 200
    assert old.headers["x-shopify-api-version"] == "2025-07"
    assert shop.api.get("/shop.json").headers["x-shopify-api-version"] == VERSION
    assert shop.api.get("/shop.json").json()["shop"]["myshopify_domain"] == shop.domain
    bogus = shop.api.get(f"{shop.info['api_base_url']}/admin/api/latest/shop.json")
    assert bogus.status_code == 404
    assert shop.api.get("/no_such_resource.json").json() == {"errors": "Not Found"}


# --- pagination --------------------------------------------------------------------------------


def test_paging_by_updated_at_returns_every_order_exactly_once(
    sandbox: SandboxServer, shops: Shops
) -> None:
    shop = shops.create(products=30, orders=1234, seed=7)
    pages = all_pages(
        shop, "/orders.json", {"status": "any", "limit": 250, "order": "updated_at asc"}, "orders"
    )
    assert [len(page) for page in pages] == [250, 250, 250, 250, 234]
    ids = [order["id"] for page in pages for order in page]
    assert len(ids) == len(set(ids)) == 1234
    assert set(ids) == set(sandbox.state.shops[shop.domain].orders)
    stamps = [(order["updated_at"], order["id"]) for page in pages for order in page]
    state_order = sorted(
        sandbox.state.shops[shop.domain].orders.values(), key=lambda o: (o.updated_at, o.id)
    )
    assert ids == [order.id for order in state_order]
    assert len(stamps) == 1234


def test_paging_with_a_filter_and_going_back(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=10, orders=400, seed=3)
    orders = sandbox.state.shops[shop.domain].orders.values()
    watermark = sorted(order.updated_at for order in orders)[150]
    minimum = _iso(watermark)
    expected = {o.id for o in orders if o.updated_at >= watermark}
    first = shop.api.get(
        "/orders.json",
        params={
            "status": "any",
            "updated_at_min": minimum,
            "limit": 100,
            "order": "updated_at asc",
        },
    )
    assert first.status_code == 200
    assert "previous" not in links(first)
    second = shop.api.get(links(first)["next"])
    assert set(links(second)) == {"previous", "next"}
    back = shop.api.get(links(second)["previous"])
    assert [o["id"] for o in back.json()["orders"]] == [o["id"] for o in first.json()["orders"]]
    pages = all_pages(
        shop,
        "/orders.json",
        {"status": "any", "updated_at_min": minimum, "limit": 100, "order": "updated_at asc"},
        "orders",
    )
    got = [order["id"] for page in pages for order in page]
    assert len(got) == len(expected)
    assert set(got) == expected


def _iso(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def test_page_info_rules(shops: Shops) -> None:
    shop = shops.create(products=5, orders=60, seed=2)
    first = shop.api.get("/orders.json", params={"status": "any", "limit": 10})
    following = links(first)["next"]
    assert re.search(r"[?&]limit=10&page_info=[A-Za-z0-9_-]+$", following)
    page_info = following.split("page_info=")[1]
    for extra in (
        {"status": "any"},
        {"updated_at_min": "2025-01-01T00:00:00Z"},
        {"order": "updated_at asc"},
    ):
        refused = shop.api.get("/orders.json", params={"page_info": page_info, **extra})
        assert refused.status_code == 400, extra
        assert "page_info" in refused.json()["errors"]
    allowed = shop.api.get(
        "/orders.json", params={"page_info": page_info, "limit": 5, "fields": "id,updated_at"}
    )
    assert allowed.status_code == 200
    assert [set(o) for o in allowed.json()["orders"]] == [{"id", "updated_at"}] * 5
    broken = shop.api.get("/orders.json", params={"page_info": "not-a-cursor"})
    assert (broken.status_code, broken.json()) == (
        400,
        {"errors": {"page_info": ["Invalid value."]}},
    )
    other_resource = shop.api.get("/products.json", params={"page_info": page_info})
    assert other_resource.status_code == 400
    assert shop.api.get("/orders.json", params={"page": 2}).status_code == 400


def test_limit_default_max_and_no_link_when_one_page(shops: Shops) -> None:
    shop = shops.create(products=5, orders=70, seed=4)
    default = shop.api.get("/orders.json", params={"status": "any"})
    assert len(default.json()["orders"]) == 50
    assert set(links(default)) == {"next"}
    whole = shop.api.get("/orders.json", params={"status": "any", "limit": 250})
    assert len(whole.json()["orders"]) == 70
    assert "link" not in whole.headers
    for bad in ("251", "0", "ten"):
        response = shop.api.get("/orders.json", params={"limit": bad})
        assert response.status_code == 400, bad


def test_status_defaults_to_open(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=10, orders=500, seed=11)
    orders = list(sandbox.state.shops[shop.domain].orders.values())
    open_ = {o.id for o in orders if o.closed_at is None and o.cancelled_at is None}
    cancelled = {o.id for o in orders if o.cancelled_at is not None}
    closed = {o.id for o in orders if o.closed_at is not None}
    assert open_
    assert cancelled
    assert closed - cancelled

    def ids(**params: str) -> set[int]:
        pages = all_pages(shop, "/orders.json", {"limit": "250", **params}, "orders")
        return {order["id"] for page in pages for order in page}

    assert ids() == open_
    assert ids(status="open") == open_
    assert ids(status="any") == {o.id for o in orders}
    assert ids(status="cancelled") == cancelled
    assert ids(status="closed") == closed
    count = shop.api.get("/orders/count.json").json()
    assert count == {"count": len(open_)}
    assert shop.api.get("/orders/count.json", params={"status": "any"}).json() == {"count": 500}
    assert shop.api.get("/orders.json", params={"status": "archived"}).status_code == 400
    one_cancelled = next(iter(cancelled))
    single = shop.api.get(f"/orders/{one_cancelled}.json")  # by id: whatever its status
    assert single.status_code == 200
    assert single.json()["order"]["cancelled_at"] is not None
    assert shop.api.get("/orders/1.json").status_code == 404


def test_order_json_has_the_documented_shape(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=50, orders=300, seed=5)
    pages = all_pages(shop, "/orders.json", {"status": "any", "limit": 250}, "orders")
    orders = [order for page in pages for order in page]
    order = orders[0]
    for name in (
        "id",
        "admin_graphql_api_id",
        "name",
        "order_number",
        "email",
        "currency",
        "total_price",
        "financial_status",
        "fulfillment_status",
        "cancelled_at",
        "created_at",
        "updated_at",
        "line_items",
        "shipping_address",
        "customer",
    ):
        assert name in order, name
    assert order["admin_graphql_api_id"] == f"gid://shopify/Order/{order['id']}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+01:00", order["updated_at"])
    assert re.fullmatch(r"\d+\.\d\d", order["total_price"])
    lines = [line for o in orders for line in o["line_items"]]
    variants = sandbox.state.shops[shop.domain].variants
    custom = [line for line in lines if line["variant_id"] is None]
    assert custom
    assert all(line["sku"] is None for line in custom)
    for line in lines:
        if line["variant_id"] is not None:
            assert line["sku"] == variants[line["variant_id"]].sku
    assert any(line["variant_id"] and line["sku"] is None for line in lines)
    statuses = {o["financial_status"] for o in orders}
    assert {"paid", "pending", "authorized", "refunded", "voided"} <= statuses
    assert {o["fulfillment_status"] for o in orders} >= {None, "fulfilled"}
    assert any(o["customer"] is None for o in orders)


# --- products, locations, inventory levels -----------------------------------------------------


def test_products_with_variants_and_locations(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=120, seed=9)
    pages = all_pages(shop, "/products.json", {"limit": 50}, "products")
    assert [len(page) for page in pages] == [50, 50, 20]
    products = [product for page in pages for product in page]
    variant = products[0]["variants"][0]
    assert {"id", "sku", "inventory_item_id", "product_id", "updated_at"} <= set(variant)
    assert variant["product_id"] == products[0]["id"]
    assert all(1 <= len(p["variants"]) <= 3 for p in products)
    assert shop.api.get("/products/count.json").json() == {"count": 120}
    locations = shop.api.get("/locations.json").json()["locations"]
    assert [location["id"] for location in locations] == shop.info["location_ids"]
    assert locations[0]["admin_graphql_api_id"] == f"gid://shopify/Location/{locations[0]['id']}"


def test_inventory_levels_parameter_rules(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=40, seed=6)
    state_shop = sandbox.state.shops[shop.domain]
    first_location, second_location = shop.info["location_ids"]
    required = shop.api.get("/inventory_levels.json")
    assert required.status_code == 422
    assert "inventory_item_ids" in str(required.json()["errors"])
    everywhere = shop.api.get("/inventory_levels.json", params={"location_ids": "all"})
    assert everywhere.status_code == 422
    assert "location_ids" in everywhere.json()["errors"]
    items = sorted(state_shop.variants_by_item)
    too_many = shop.api.get(
        "/inventory_levels.json", params={"inventory_item_ids": ",".join(map(str, items[:51]))}
    )
    assert too_many.status_code == 422
    fifty = shop.api.get(
        "/inventory_levels.json",
        params={"inventory_item_ids": ",".join(map(str, items[:50])), "limit": 250},
    )
    assert fifty.status_code == 200
    expected = {key for key in state_shop.levels if key[0] in set(items[:50])}
    got = {(lv["inventory_item_id"], lv["location_id"]) for lv in fifty.json()["inventory_levels"]}
    assert got == expected
    level = fifty.json()["inventory_levels"][0]
    assert (
        level["available"]
        == state_shop.levels[(level["inventory_item_id"], level["location_id"])].available
    )
    assert level["admin_graphql_api_id"] == (
        f"gid://shopify/InventoryLevel/{level['location_id']}"
        f"?inventory_item_id={level['inventory_item_id']}"
    )
    both = shop.api.get(
        "/inventory_levels.json",
        params={
            "inventory_item_ids": ",".join(map(str, items[:50])),
            "location_ids": str(second_location),
            "limit": 250,
        },
    )
    assert {lv["location_id"] for lv in both.json()["inventory_levels"]} == {second_location}
    pages = all_pages(
        shop,
        "/inventory_levels.json",
        {"location_ids": str(first_location), "limit": 25},
        "inventory_levels",
    )
    keys = [(lv["inventory_item_id"], lv["location_id"]) for page in pages for lv in page]
    assert len(keys) == len(set(keys))
    assert set(keys) == {key for key in state_shop.levels if key[1] == first_location}
    assert len(pages) > 1


def test_inventory_changed_behind_the_clients_back(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=5, seed=1)
    item, location = next(iter(sandbox.state.shops[shop.domain].levels))
    changed = shop.control.post(
        "/inventory_levels",
        json={"inventory_item_id": item, "location_id": location, "available": 3},
    )
    assert changed.status_code == 200
    assert changed.json()["inventory_level"]["available"] == 3
    moved = shop.control.post(
        "/inventory_levels", json={"inventory_item_id": item, "location_id": location, "delta": -5}
    )
    assert moved.json()["inventory_level"]["available"] == -2
    read = shop.api.get(
        "/inventory_levels.json",
        params={"inventory_item_ids": str(item), "location_ids": str(location)},
    )
    assert [lv["available"] for lv in read.json()["inventory_levels"]] == [-2]


# --- fulfilment orders and fulfilments ---------------------------------------------------------


def _order_with_two_lines(shop: ShopHandle, sandbox: SandboxServer) -> dict[str, Any]:
    variants = list(sandbox.state.shops[shop.domain].variants.values())
    created = shop.control.post(
        "/orders",
        json={
            "line_items": [
                {"variant_id": variants[0].id, "quantity": 2},
                {"variant_id": variants[1].id, "quantity": 1},
            ]
        },
    )
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()["order"]
    return order


def test_fulfilment_through_fulfillment_orders(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=5, seed=1)
    order = _order_with_two_lines(shop, sandbox)
    listed = shop.api.get(f"/orders/{order['id']}/fulfillment_orders.json")
    assert listed.status_code == 200
    (fulfillment_order,) = listed.json()["fulfillment_orders"]
    assert fulfillment_order["status"] == "open"
    assert fulfillment_order["order_id"] == order["id"]
    assert fulfillment_order["assigned_location_id"] == shop.info["location_ids"][0]
    fo_lines = fulfillment_order["line_items"]
    assert [
        (line["line_item_id"], line["quantity"], line["fulfillable_quantity"]) for line in fo_lines
    ] == [(line["id"], line["quantity"], line["quantity"]) for line in order["line_items"]]
    assert all(line["id"] != line["line_item_id"] for line in fo_lines)

    partial = shop.api.post(
        "/fulfillments.json",
        json={
            "fulfillment": {
                "notify_customer": False,
                "tracking_info": {"number": "1234567890", "company": "DHL Express"},
                "line_items_by_fulfillment_order": [
                    {
                        "fulfillment_order_id": fulfillment_order["id"],
                        "fulfillment_order_line_items": [{"id": fo_lines[0]["id"], "quantity": 1}],
                    }
                ],
            }
        },
    )
    assert partial.status_code == 201, partial.text
    fulfillment = partial.json()["fulfillment"]
    assert fulfillment["status"] == "success"
    assert fulfillment["tracking_number"] == "1234567890"
    assert fulfillment["tracking_url"].startswith("https://www.dhl.com/")
    assert [(line["id"], line["quantity"]) for line in fulfillment["line_items"]] == [
        (order["line_items"][0]["id"], 1)
    ]
    after = shop.api.get(f"/orders/{order['id']}.json").json()["order"]
    assert after["fulfillment_status"] == "partial"
    assert after["updated_at"] > order["updated_at"]
    assert [line["fulfillable_quantity"] for line in after["line_items"]] == [1, 1]
    fo = shop.api.get(f"/orders/{order['id']}/fulfillment_orders.json").json()
    assert fo["fulfillment_orders"][0]["status"] == "in_progress"

    too_many = shop.api.post(
        "/fulfillments.json",
        json={
            "fulfillment": {
                "line_items_by_fulfillment_order": [
                    {
                        "fulfillment_order_id": fulfillment_order["id"],
                        "fulfillment_order_line_items": [{"id": fo_lines[0]["id"], "quantity": 2}],
                    }
                ]
            }
        },
    )
    assert too_many.status_code == 422
    assert shop.api.get(f"/orders/{order['id']}.json").json()["order"]["fulfillment_status"] == (
        "partial"
    )

    rest = shop.api.post(
        "/fulfillments.json",
        json={
            "fulfillment": {
                "line_items_by_fulfillment_order": [
                    {"fulfillment_order_id": fulfillment_order["id"]}
                ]
            }
        },
    )
    assert rest.status_code == 201
    assert {line["quantity"] for line in rest.json()["fulfillment"]["line_items"]} == {1}
    done = shop.api.get(f"/orders/{order['id']}.json").json()["order"]
    assert done["fulfillment_status"] == "fulfilled"
    assert len(done["fulfillments"]) == 2
    closed = shop.api.get(f"/orders/{order['id']}/fulfillment_orders.json").json()
    assert closed["fulfillment_orders"][0]["status"] == "closed"
    again = shop.api.post(
        "/fulfillments.json",
        json={
            "fulfillment": {
                "line_items_by_fulfillment_order": [
                    {"fulfillment_order_id": fulfillment_order["id"]}
                ]
            }
        },
    )
    assert again.status_code == 422
    assert "unfulfillable status" in again.json()["errors"][0]

    tracking = shop.api.post(
        f"/fulfillments/{fulfillment['id']}/update_tracking.json",
        json={
            "fulfillment": {
                "tracking_info": {"number": "JD0001", "company": "FedEx"},
                "notify_customer": True,
            }
        },
    )
    assert tracking.status_code == 200
    assert tracking.json()["fulfillment"]["tracking_numbers"] == ["JD0001"]
    assert tracking.json()["fulfillment"]["tracking_company"] == "FedEx"
    listed_fulfillments = shop.api.get(f"/orders/{order['id']}/fulfillments.json").json()
    assert [f["id"] for f in listed_fulfillments["fulfillments"]] == [
        fulfillment["id"],
        rest.json()["fulfillment"]["id"],
    ]


def test_the_removed_order_fulfillments_endpoint_is_404(
    sandbox: SandboxServer, shops: Shops
) -> None:
    shop = shops.create(products=5, seed=1)
    order = _order_with_two_lines(shop, sandbox)
    legacy = shop.api.post(
        f"/orders/{order['id']}/fulfillments.json",
        json={
            "fulfillment": {
                "location_id": shop.info["location_ids"][0],
                "line_items": [{"id": order["line_items"][0]["id"]}],
            }
        },
    )
    assert (legacy.status_code, legacy.json()) == (404, {"errors": "Not Found"})
    assert shop.api.get(f"/orders/{order['id']}.json").json()["order"]["fulfillments"] == []


def test_fulfilment_of_an_unknown_or_cancelled_order(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=5, seed=1)
    order = _order_with_two_lines(shop, sandbox)
    (fo,) = shop.api.get(f"/orders/{order['id']}/fulfillment_orders.json").json()[
        "fulfillment_orders"
    ]
    assert shop.control.post(f"/orders/{order['id']}/cancel", json={}).status_code == 200
    refused = shop.api.post(
        "/fulfillments.json",
        json={
            "fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id": fo["id"]}]}
        },
    )
    assert refused.status_code == 422
    missing = shop.api.post(
        "/fulfillments.json",
        json={"fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id": 1}]}},
    )
    assert missing.status_code == 404
    assert shop.api.post("/fulfillments.json", json={}).status_code == 400


# --- webhook subscriptions ---------------------------------------------------------------------


def test_webhook_subscriptions_crud_and_validation(shops: Shops) -> None:
    shop = shops.create()
    body = {
        "webhook": {
            "topic": "orders/create",
            "address": "http://127.0.0.1:9/hooks",
            "format": "json",
        }
    }
    created = shop.api.post("/webhooks.json", json=body)
    assert created.status_code == 201
    hook = created.json()["webhook"]
    assert (hook["topic"], hook["address"], hook["format"], hook["api_version"]) == (
        "orders/create",
        "http://127.0.0.1:9/hooks",
        "json",
        VERSION,
    )
    duplicate = shop.api.post("/webhooks.json", json=body)
    assert duplicate.status_code == 422
    assert duplicate.json()["errors"]["address"] == ["for this topic has already been taken"]
    bad_topic = shop.api.post(
        "/webhooks.json", json={"webhook": {"topic": "orders/nope", "address": "http://x.test/"}}
    )
    assert bad_topic.status_code == 422
    assert "topic" in bad_topic.json()["errors"]
    no_address = shop.api.post("/webhooks.json", json={"webhook": {"topic": "orders/updated"}})
    assert no_address.status_code == 422
    assert shop.api.get("/webhooks.json").json()["webhooks"] == [hook]
    assert shop.api.get("/webhooks/count.json").json() == {"count": 1}
    moved = shop.api.put(
        f"/webhooks/{hook['id']}.json",
        json={"webhook": {"id": hook["id"], "address": "http://127.0.0.1:9/other"}},
    )
    assert moved.status_code == 200
    assert moved.json()["webhook"]["address"] == "http://127.0.0.1:9/other"
    assert (
        shop.api.get("/webhooks.json", params={"topic": "orders/create"}).json()["webhooks"][0][
            "address"
        ]
        == "http://127.0.0.1:9/other"
    )
    assert shop.api.delete(f"/webhooks/{hook['id']}.json").status_code == 200
    assert shop.api.get("/webhooks.json").json() == {"webhooks": []}
    assert shop.api.delete(f"/webhooks/{hook['id']}.json").status_code == 404
