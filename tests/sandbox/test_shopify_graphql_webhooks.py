"""Webhook subscriptions through the sandbox's GraphQL Admin API: the same store as REST's
webhooks.json, Shopify's topic enum (no compliance topics), the creating request's API version
kept through updates, user errors for duplicates and unknown ids, filters and pagination."""

from __future__ import annotations

from typing import Any

from tests.sandbox.conftest import VERSION, Shops

FIELDS = "id legacyResourceId topic uri format includeFields apiVersion { handle }"
CREATE = f"""
mutation Create($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {{
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {{
    webhookSubscription {{ {FIELDS} }}
    userErrors {{ field message }}
  }}
}}"""
UPDATE = f"""
mutation Update($id: ID!, $sub: WebhookSubscriptionInput!) {{
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $sub) {{
    webhookSubscription {{ {FIELDS} }}
    userErrors {{ field message }}
  }}
}}"""
DELETE = """
mutation Delete($id: ID!) {
  webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } }
}"""
LIST = f"""
query List($first: Int!, $after: String, $topics: [WebhookSubscriptionTopic!]) {{
  webhookSubscriptions(first: $first, after: $after, topics: $topics) {{
    nodes {{ {FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""


def _create(shop: Any, topic: str, uri: str, format_: str = "JSON") -> dict[str, Any]:
    result = shop.graphql(CREATE, {"topic": topic, "sub": {"uri": uri, "format": format_}})
    payload: dict[str, Any] = result["data"]["webhookSubscriptionCreate"]
    return payload


def test_created_through_graphql_seen_through_rest_and_back(shops: Shops) -> None:
    shop = shops.create()
    created = _create(shop, "ORDERS_CREATE", "https://rappit.example.com/webhooks/shopify/o")
    assert created["userErrors"] == []
    subscription = created["webhookSubscription"]
    assert (subscription["topic"], subscription["uri"], subscription["format"]) == (
        "ORDERS_CREATE",
        "https://rappit.example.com/webhooks/shopify/o",
        "JSON",
    )
    assert subscription["apiVersion"] == {"handle": VERSION}

    hooks = shop.api.get("/webhooks.json").json()["webhooks"]
    assert [(h["id"], h["topic"], h["address"]) for h in hooks] == [
        (int(subscription["legacyResourceId"]), "orders/create", subscription["uri"])
    ]
    # One made through REST at an older version shows that version through GraphQL.
    old = shop.api.post(
        f"{shop.info['api_base_url']}/admin/api/2025-07/webhooks.json",
        json={"webhook": {"topic": "app/uninstalled", "address": "https://x.example/u"}},
    )
    assert old.status_code == 201, old.text
    listed = shop.graphql(LIST, {"first": 10})["data"]["webhookSubscriptions"]["nodes"]
    assert [(n["topic"], n["apiVersion"]["handle"]) for n in listed] == [
        ("ORDERS_CREATE", VERSION),
        ("APP_UNINSTALLED", "2025-07"),
    ]


def test_update_changes_address_format_and_fields_never_the_version(shops: Shops) -> None:
    shop = shops.create()
    old = shop.api.post(
        f"{shop.info['api_base_url']}/admin/api/2025-07/webhooks.json",
        json={"webhook": {"topic": "orders/updated", "address": "https://a.example/1"}},
    ).json()["webhook"]

    result = shop.graphql(
        UPDATE,
        {
            "id": old["admin_graphql_api_id"],
            "sub": {"uri": "https://b.example/2", "format": "XML", "includeFields": ["id"]},
        },
    )["data"]["webhookSubscriptionUpdate"]

    assert result["userErrors"] == []
    updated = result["webhookSubscription"]
    assert (updated["uri"], updated["format"], updated["includeFields"]) == (
        "https://b.example/2",
        "XML",
        ["id"],
    )
    assert updated["apiVersion"] == {"handle": "2025-07"}


def test_user_errors_and_invalid_topics(shops: Shops) -> None:
    shop = shops.create()
    uri = "https://rappit.example.com/webhooks/shopify/orders/create"
    assert _create(shop, "ORDERS_CREATE", uri)["userErrors"] == []

    assert _create(shop, "ORDERS_CREATE", uri)["userErrors"] == [
        {
            "field": ["webhookSubscription", "uri"],
            "message": "Address for this topic has already been taken",
        }
    ]
    assert _create(shop, "ORDERS_CREATE", "ftp://x")["userErrors"] == [
        {"field": ["webhookSubscription", "uri"], "message": "Address is invalid"}
    ]
    # Compliance topics are configured in the app, never through the API: not in the enum.
    refused = shop.graphql(CREATE, {"topic": "CUSTOMERS_REDACT", "sub": {"uri": uri}})
    assert refused["data"]["webhookSubscriptionCreate"] is None
    assert refused["errors"][0]["extensions"]["code"] == "argumentLiteralsIncompatible"

    missing = "gid://shopify/WebhookSubscription/1"
    assert shop.graphql(DELETE, {"id": missing})["data"]["webhookSubscriptionDelete"] == {
        "deletedWebhookSubscriptionId": None,
        "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
    }
    assert shop.graphql(UPDATE, {"id": missing, "sub": {"uri": uri}})["data"][
        "webhookSubscriptionUpdate"
    ]["userErrors"] == [{"field": ["id"], "message": "Webhook subscription does not exist"}]


def test_delete_filters_and_pages(shops: Shops) -> None:
    shop = shops.create()
    ids = [
        _create(shop, topic, f"https://r.example/{n}")["webhookSubscription"]["id"]
        for n, topic in enumerate(
            ["ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_CREATE", "APP_UNINSTALLED"]
        )
    ]
    only_creates = shop.graphql(LIST, {"first": 10, "topics": ["ORDERS_CREATE"]})
    assert [n["id"] for n in only_creates["data"]["webhookSubscriptions"]["nodes"]] == [
        ids[0],
        ids[2],
    ]

    seen: list[str] = []
    after = None
    while True:
        page = shop.graphql(LIST, {"first": 3, "after": after})["data"]["webhookSubscriptions"]
        seen += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ids

    deleted = shop.graphql(DELETE, {"id": ids[1]})["data"]["webhookSubscriptionDelete"]
    assert deleted == {"deletedWebhookSubscriptionId": ids[1], "userErrors": []}
    assert shop.api.get("/webhooks/count.json").json() == {"count": 3}
