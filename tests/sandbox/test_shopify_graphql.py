"""The sandbox's GraphQL Admin API: shapes projected on the selection, connections, bulk
operations (JSONL with ``__parentId``), inventorySetQuantities compare-and-set and idempotency,
fulfillmentCreate."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from rappit.sandbox.shopify import SandboxServer
from tests.sandbox.conftest import ShopHandle, Shops, wait_until

BULK_ORDERS = '''
mutation {
  bulkOperationRunQuery(query: """
    {
      orders {
        edges {
          node {
            id
            name
            updatedAt
            lineItems {
              edges { node { id sku quantity variant { id } } }
            }
          }
        }
      }
    }
  """) {
    bulkOperation { id status }
    userErrors { field message }
  }
}
'''

SET_QUANTITIES = """
mutation inventorySet($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup {
      id reason referenceDocumentUri
      changes { name delta quantityAfterChange item { id } location { id } }
    }
    userErrors { field message code }
  }
}
"""


def _finished(shop: ShopHandle, operation_id: str) -> dict[str, Any]:
    query = """query($id: ID!) { node(id: $id) { ... on BulkOperation {
        id status objectCount rootObjectCount fileSize url errorCode } } }"""

    def done() -> dict[str, Any] | None:
        node: dict[str, Any] = shop.graphql(query, {"id": operation_id})["data"]["node"]
        return node if node["status"] == "COMPLETED" else None

    result: dict[str, Any] = wait_until(done, 20, "the bulk operation")
    return result


def test_bulk_operation_orders_with_line_items(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=20, orders=700, seed=13)
    started = shop.graphql(BULK_ORDERS)["data"]["bulkOperationRunQuery"]
    assert started["userErrors"] == []
    assert started["bulkOperation"]["status"] in ("CREATED", "RUNNING")
    operation_id = started["bulkOperation"]["id"]
    assert operation_id.startswith("gid://shopify/BulkOperation/")
    done = _finished(shop, operation_id)
    current = shop.graphql("{ currentBulkOperation { id status url } }")["data"]
    assert current["currentBulkOperation"]["id"] == operation_id

    with httpx.Client(trust_env=False) as client:
        body = client.get(done["url"]).text  # served without the access token, like a signed URL
    lines = [json.loads(line) for line in body.splitlines()]
    orders = sandbox.state.shops[shop.domain].orders
    roots = [line for line in lines if "__parentId" not in line]
    children = [line for line in lines if "__parentId" in line]
    assert done["objectCount"] == str(len(lines))
    assert done["rootObjectCount"] == str(len(roots)) == "700"
    assert done["fileSize"] == str(len(body.encode()))
    assert {line["id"] for line in roots} == {f"gid://shopify/Order/{i}" for i in orders}
    assert len(children) == sum(len(order.line_items) for order in orders.values())
    seen: set[str] = set()
    for line in lines:  # every child comes after its parent
        if "__parentId" in line:
            assert line["__parentId"] in seen
        else:
            seen.add(line["id"])
    by_id = {f"gid://shopify/Order/{i}": order for i, order in orders.items()}
    for child in children:
        order = by_id[child["__parentId"]]
        (line_item,) = [
            li for li in order.line_items if f"gid://shopify/LineItem/{li.id}" == child["id"]
        ]
        assert (child["sku"], child["quantity"]) == (line_item.sku, line_item.quantity)
        expected_variant = (
            {"id": f"gid://shopify/ProductVariant/{line_item.variant_id}"}
            if line_item.variant_id
            else None
        )
        assert child["variant"] == expected_variant
    assert set(roots[0]) == {"id", "name", "updatedAt"}


def test_bulk_operation_products_with_variants(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=60, seed=3)
    query = (
        'mutation { bulkOperationRunQuery(query: "{ products { edges { node { id title '
        'variants { edges { node { id sku inventoryItem { id } } } } } } } }") '
        "{ bulkOperation { id } userErrors { message } } }"
    )
    operation_id = shop.graphql(query)["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
    done = _finished(shop, operation_id)
    with httpx.Client(trust_env=False) as client:
        lines = [json.loads(line) for line in client.get(done["url"]).text.splitlines()]
    variants = sandbox.state.shops[shop.domain].variants
    children = [line for line in lines if "__parentId" in line]
    assert len(lines) - len(children) == 60
    assert {line["id"] for line in children} == {
        f"gid://shopify/ProductVariant/{v}" for v in variants
    }
    for child in children:
        variant = variants[int(child["id"].rsplit("/", 1)[1])]
        assert child["__parentId"] == f"gid://shopify/Product/{variant.product_id}"
        assert child["inventoryItem"] == {
            "id": f"gid://shopify/InventoryItem/{variant.inventory_item_id}"
        }


def test_bulk_query_errors_are_user_errors(shops: Shops) -> None:
    shop = shops.create()
    invalid = shop.graphql(
        'mutation { bulkOperationRunQuery(query: "{ shop { name } }") '
        "{ bulkOperation { id } userErrors { field message } } }"
    )
    payload = invalid["data"]["bulkOperationRunQuery"]
    assert payload["bulkOperation"] is None
    assert payload["userErrors"][0]["field"] == ["query"]
    assert shop.graphql("{ currentBulkOperation { id } }")["data"] == {"currentBulkOperation": None}


def _level(sandbox: SandboxServer, shop: ShopHandle, index: int = 0) -> tuple[int, int, int]:
    item, location = sorted(sandbox.state.shops[shop.domain].levels)[index]
    return item, location, sandbox.state.shops[shop.domain].levels[(item, location)].available


def _quantity(item: int, location: int, quantity: int, **check: int | None) -> dict[str, Any]:
    return {
        "inventoryItemId": f"gid://shopify/InventoryItem/{item}",
        "locationId": f"gid://shopify/Location/{location}",
        "quantity": quantity,
        **check,
    }


def _available(shop: ShopHandle, item: int, location: int) -> int:
    response = shop.api.get(
        "/inventory_levels.json",
        params={"inventory_item_ids": str(item), "location_ids": str(location)},
    )
    value: int = response.json()["inventory_levels"][0]["available"]
    return value


def test_inventory_set_quantities_compare_and_set(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=5, seed=2)
    item, location, current = _level(sandbox, shop, 0)
    other_item, other_location, other_current = _level(sandbox, shop, 1)
    stale = shop.graphql(
        SET_QUANTITIES,
        {
            "key": str(uuid.uuid4()),
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": "rappit://sync/1",
                "quantities": [
                    _quantity(other_item, other_location, 77, compareQuantity=other_current),
                    _quantity(item, location, 42, compareQuantity=current + 1),
                ],
            },
        },
    )["data"]["inventorySetQuantities"]
    assert stale["inventoryAdjustmentGroup"] is None
    assert stale["userErrors"] == [
        {
            "field": ["input", "quantities", "1", "compareQuantity"],
            "message": "The specified compareQuantity does not match the current quantity.",
            "code": "COMPARE_QUANTITY_STALE",
        }
    ]
    assert _available(shop, other_item, other_location) == other_current  # nothing applied
    assert _available(shop, item, location) == current

    applied = shop.graphql(
        SET_QUANTITIES,
        {
            "key": str(uuid.uuid4()),
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": "rappit://sync/2",
                "quantities": [_quantity(item, location, 42, compareQuantity=current)],
            },
        },
    )["data"]["inventorySetQuantities"]
    assert applied["userErrors"] == []
    group = applied["inventoryAdjustmentGroup"]
    assert group["id"].startswith("gid://shopify/InventoryAdjustmentGroup/")
    assert (group["reason"], group["referenceDocumentUri"]) == ("correction", "rappit://sync/2")
    assert group["changes"][0] == {
        "name": "available",
        "delta": 42 - current,
        "quantityAfterChange": 42,
        "item": {"id": f"gid://shopify/InventoryItem/{item}"},
        "location": {"id": f"gid://shopify/Location/{location}"},
    }
    assert _available(shop, item, location) == 42

    newer = shop.graphql(
        SET_QUANTITIES,
        {
            "key": str(uuid.uuid4()),
            "input": {
                "name": "available",
                "reason": "correction",
                "quantities": [_quantity(item, location, 40, changeFromQuantity=41)],
            },
        },
    )["data"]["inventorySetQuantities"]
    assert [e["code"] for e in newer["userErrors"]] == ["CHANGE_FROM_QUANTITY_STALE"]
    unchecked = shop.graphql(
        SET_QUANTITIES,
        {
            "key": str(uuid.uuid4()),
            "input": {
                "name": "available",
                "reason": "correction",
                "quantities": [_quantity(item, location, 40, changeFromQuantity=None)],
            },
        },
    )["data"]["inventorySetQuantities"]
    assert unchecked["userErrors"] == []
    assert _available(shop, item, location) == 40


def test_inventory_set_quantities_idempotency(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=5, seed=2)
    item, location, current = _level(sandbox, shop, 0)
    key = str(uuid.uuid4())
    variables: dict[str, Any] = {
        "key": key,
        "input": {
            "name": "available",
            "reason": "correction",
            "quantities": [_quantity(item, location, current + 5, compareQuantity=current)],
        },
    }
    first = shop.graphql(SET_QUANTITIES, variables)["data"]["inventorySetQuantities"]
    assert first["userErrors"] == []
    # Someone changes the level; the client's retry of the same operation must not apply again.
    shop.control.post(
        "/inventory_levels",
        json={"inventory_item_id": item, "location_id": location, "available": 3},
    )
    retried = shop.graphql(SET_QUANTITIES, variables)["data"]["inventorySetQuantities"]
    assert retried == first
    assert _available(shop, item, location) == 3
    reused = shop.graphql(
        SET_QUANTITIES,
        {
            **variables,
            "input": {
                **variables["input"],
                "quantities": [_quantity(item, location, 9, compareQuantity=3)],
            },
        },
    )
    assert reused["data"]["inventorySetQuantities"] is None
    assert reused["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    assert _available(shop, item, location) == 3


def test_idempotency_key_and_check_required_from_2026_04(
    sandbox: SandboxServer, shops: Shops
) -> None:
    shop = shops.create(products=3, seed=2)
    item, location, current = _level(sandbox, shop, 0)
    no_key = """mutation($input: InventorySetQuantitiesInput!) {
        inventorySetQuantities(input: $input) { userErrors { code } } }"""
    quantities = [_quantity(item, location, current + 1, compareQuantity=current)]
    refused = shop.graphql(
        no_key, {"input": {"name": "available", "reason": "correction", "quantities": quantities}}
    )
    assert refused["errors"][0]["message"].startswith("The @idempotent directive is required")
    old_api = httpx.Client(
        base_url=f"{shop.info['api_base_url']}/admin/api/2025-10",
        headers={"X-Shopify-Access-Token": shop.token},
        trust_env=False,
    )
    with old_api:
        accepted = old_api.post(
            "/graphql.json",
            json={
                "query": no_key,
                "variables": {
                    "input": {
                        "name": "available",
                        "reason": "correction",
                        "quantities": [_quantity(item, location, current + 1)],
                    }
                },
            },
        ).json()
    assert accepted["data"]["inventorySetQuantities"]["userErrors"] == []
    unchecked = shop.graphql(
        SET_QUANTITIES,
        {
            "key": str(uuid.uuid4()),
            "input": {
                "name": "available",
                "reason": "correction",
                "quantities": [_quantity(item, location, 1)],
            },
        },
    )["data"]["inventorySetQuantities"]
    assert [e["code"] for e in unchecked["userErrors"]] == ["CHANGE_FROM_QUANTITY_REQUIRED"]
    unknown = shop.graphql(
        SET_QUANTITIES,
        {
            "key": str(uuid.uuid4()),
            "input": {
                "name": "available",
                "reason": "correction",
                "quantities": [_quantity(1, location, 1, changeFromQuantity=None)],
            },
        },
    )["data"]["inventorySetQuantities"]
    assert [e["code"] for e in unknown["userErrors"]] == ["INVALID_INVENTORY_ITEM"]


def test_queries_project_the_selection(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=10, orders=30, seed=8)
    query = """query($first: Int!, $after: String) {
      orders(first: $first, after: $after, sortKey: UPDATED_AT) {
        edges { cursor node { id legacyResourceId updatedAt
          total: totalPriceSet { shopMoney { amount currencyCode } }
          lineItems(first: 5) { nodes { sku quantity } } } }
        pageInfo { hasNextPage endCursor }
      }
    }"""
    seen: list[str] = []
    after = None
    while True:
        page = shop.graphql(query, {"first": 7, "after": after})["data"]["orders"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    orders = sandbox.state.shops[shop.domain].orders.values()
    expected = [
        f"gid://shopify/Order/{o.id}" for o in sorted(orders, key=lambda o: (o.updated_at, o.id))
    ]
    assert seen == expected
    node = shop.graphql(query, {"first": 1})["data"]["orders"]["edges"][0]["node"]
    assert set(node) == {"id", "legacyResourceId", "updatedAt", "total", "lineItems"}
    assert set(node["total"]["shopMoney"]) == {"amount", "currencyCode"}
    assert node["updatedAt"].endswith("Z")
    wrong = shop.graphql("{ orders(first: 1) { nodes { id colour } } }")
    assert wrong["errors"][0]["message"] == "Field 'colour' doesn't exist on type 'Order'"
    syntax = shop.graphql("{ orders(first: 1) { nodes { id }")
    assert syntax["errors"][0]["message"].startswith("Parse error")
    filtered = shop.graphql(
        '{ orders(first: 50, query: "status:cancelled") { nodes { cancelledAt } } }'
    )["data"]["orders"]["nodes"]
    assert len(filtered) == sum(1 for o in orders if o.cancelled_at is not None)
    assert all(order["cancelledAt"] for order in filtered)
    order_id = expected[0]
    one = shop.graphql(
        "query($id: ID!) { order(id: $id) { name fulfillmentOrders(first: 5) "
        "{ nodes { id status lineItems(first: 10) { nodes { id remainingQuantity } } } } } }",
        {"id": order_id},
    )["data"]["order"]
    assert one["name"].startswith("#")
    assert one["fulfillmentOrders"]["nodes"][0]["id"].startswith("gid://shopify/FulfillmentOrder/")


def test_fulfillment_create_mutation(sandbox: SandboxServer, shops: Shops) -> None:
    shop = shops.create(products=5, seed=1)
    variant = next(iter(sandbox.state.shops[shop.domain].variants.values()))
    order = shop.control.post(
        "/orders", json={"line_items": [{"variant_id": variant.id, "quantity": 3}]}
    ).json()["order"]
    fo = shop.graphql(
        "query($id: ID!) { order(id: $id) { fulfillmentOrders(first: 1) { nodes { id "
        "lineItems(first: 5) { nodes { id remainingQuantity } } } } } }",
        {"id": order["admin_graphql_api_id"]},
    )["data"]["order"]["fulfillmentOrders"]["nodes"][0]
    mutation = """mutation($fulfillment: FulfillmentInput!) {
      fulfillmentCreate(fulfillment: $fulfillment) {
        fulfillment { id status trackingInfo(first: 5) { company number url } }
        userErrors { field message }
      }
    }"""
    line = fo["lineItems"]["nodes"][0]
    result = shop.graphql(
        mutation,
        {
            "fulfillment": {
                "lineItemsByFulfillmentOrder": [
                    {
                        "fulfillmentOrderId": fo["id"],
                        "fulfillmentOrderLineItems": [{"id": line["id"], "quantity": 2}],
                    }
                ],
                "trackingInfo": {"company": "FedEx", "number": "794843185271"},
            }
        },
    )["data"]["fulfillmentCreate"]
    assert result["userErrors"] == []
    assert result["fulfillment"]["status"] == "SUCCESS"
    assert result["fulfillment"]["trackingInfo"] == [
        {
            "company": "FedEx",
            "number": "794843185271",
            "url": "https://www.fedex.com/fedextrack/?trknbr=794843185271",
        }
    ]
    too_many = shop.graphql(
        mutation,
        {
            "fulfillment": {
                "lineItemsByFulfillmentOrder": [
                    {
                        "fulfillmentOrderId": fo["id"],
                        "fulfillmentOrderLineItems": [{"id": line["id"], "quantity": 2}],
                    }
                ],
            }
        },
    )["data"]["fulfillmentCreate"]
    assert too_many["fulfillment"] is None
    assert too_many["userErrors"][0]["message"] == (
        "Invalid fulfillment order line item quantity requested."
    )
    rest = shop.api.get(f"/orders/{order['id']}.json").json()["order"]
    assert rest["fulfillment_status"] == "partial"
