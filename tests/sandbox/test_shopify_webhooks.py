"""Webhook delivery from the sandbox to a real receiver on loopback: Shopify's headers, the
signature checked with Rappit's own verifier, retries with one webhook id, the delivery log,
failing subscriptions removed, and the events the control API and REST calls trigger."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

from rappit.integrations.shopify.signatures import verify
from rappit.sandbox.shopify import SandboxServer
from tests.sandbox.conftest import VERSION, Receiver, ShopHandle, Shops, wait_until


def subscribe(shop: ShopHandle, topic: str, address: str) -> dict[str, Any]:
    response = shop.api.post(
        "/webhooks.json", json={"webhook": {"topic": topic, "address": address, "format": "json"}}
    )
    assert response.status_code == 201, response.text
    hook: dict[str, Any] = response.json()["webhook"]
    return hook


def new_order(sandbox: SandboxServer, shop: ShopHandle, **extra: Any) -> dict[str, Any]:
    variant = next(iter(sandbox.state.shops[shop.domain].variants.values()))
    response = shop.control.post(
        "/orders", json={"line_items": [{"variant_id": variant.id, "quantity": 1}], **extra}
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()["order"]
    return order


def deliveries(shop: ShopHandle, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = shop.control.get("/webhook_deliveries", params=params).json()[
        "deliveries"
    ]
    return found


def test_signed_delivery_retried_after_a_failing_receiver(
    sandbox: SandboxServer, shops: Shops, receiver_factory: Callable[..., Receiver]
) -> None:
    shop = shops.create(products=3, seed=1, webhook_secret="shpss_sandbox_secret")
    receiver = receiver_factory(fail_first=2)
    hook = subscribe(shop, "orders/create", receiver.url)
    order = new_order(sandbox, shop, financial_status="pending")
    received = receiver.wait_for(3)
    assert [r.answered for r in received] == [500, 500, 200]
    first = received[0]
    for attempt in received:
        assert attempt.body == first.body  # the original payload on every retry
        assert attempt.headers["x-shopify-webhook-id"] == first.headers["x-shopify-webhook-id"]
        assert attempt.headers["x-shopify-event-id"] == first.headers["x-shopify-event-id"]
        assert verify(
            attempt.body, attempt.headers["x-shopify-hmac-sha256"], ["shpss_sandbox_secret"]
        )
    headers = first.headers
    assert headers["x-shopify-topic"] == "orders/create"
    assert headers["x-shopify-shop-domain"] == shop.domain
    assert headers["x-shopify-api-version"] == VERSION
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", headers["x-shopify-triggered-at"]
    )
    expected = base64.b64encode(
        hmac.new(b"shpss_sandbox_secret", first.body, hashlib.sha256).digest()
    ).decode()
    assert headers["x-shopify-hmac-sha256"] == expected
    assert not verify(first.body, headers["x-shopify-hmac-sha256"], ["another secret"])
    assert first.payload["id"] == order["id"]
    assert first.payload == order  # the REST order

    (logged,) = wait_until(
        lambda: [d for d in deliveries(shop) if d["state"] == "delivered"], what="the log"
    )
    assert logged["webhook_id"] == headers["x-shopify-webhook-id"]
    assert logged["subscription_id"] == hook["id"]
    assert [a["status_code"] for a in logged["attempts"]] == [500, 500, 200]
    assert [a["error"] for a in logged["attempts"]] == ["HTTP 500", "HTTP 500", None]
    assert shop.api.get(f"/webhooks/{hook['id']}.json").status_code == 200


def test_a_subscription_that_keeps_failing_is_deleted(
    sandbox: SandboxServer, shops: Shops, receiver_factory: Callable[..., Receiver]
) -> None:
    shop = shops.create(products=3, seed=1)
    receiver = receiver_factory(fail_first=None, fail_with=302)  # redirects are failures too
    hook = subscribe(shop, "orders/create", receiver.url)
    new_order(sandbox, shop)
    assert len(receiver.wait_for(4)) == 4  # 1 + 3 retries
    failed = wait_until(lambda: deliveries(shop, state="failed"), what="the failed delivery")
    assert [a["status_code"] for a in failed[0]["attempts"]] == [302] * 4
    assert shop.api.get(f"/webhooks/{hook['id']}.json").status_code == 404
    assert shop.api.get("/webhooks.json").json() == {"webhooks": []}


def test_unreachable_receiver_is_retried_then_given_up(
    sandbox: SandboxServer, shops: Shops, receiver_factory: Callable[..., Receiver]
) -> None:
    shop = shops.create(products=3, seed=1)
    gone = receiver_factory()
    address = gone.url
    gone.close()  # nothing listens there any more
    subscribe(shop, "orders/create", address)
    new_order(sandbox, shop)
    (failed,) = wait_until(lambda: deliveries(shop, state="failed"), what="the failed delivery")
    assert len(failed["attempts"]) == 4
    assert all(a["status_code"] is None and a["error"] for a in failed["attempts"])


def test_one_event_many_topics_and_subscriptions(
    sandbox: SandboxServer, shops: Shops, receiver_factory: Callable[..., Receiver]
) -> None:
    shop = shops.create(products=3, seed=1)
    receiver = receiver_factory()
    other = receiver_factory()
    for topic in ("orders/cancelled", "orders/updated"):
        subscribe(shop, topic, receiver.url)
    subscribe(shop, "orders/updated", other.url)
    order = new_order(sandbox, shop)  # no subscription to orders/create: nothing sent
    cancelled = shop.control.post(f"/orders/{order['id']}/cancel", json={"reason": "customer"})
    assert cancelled.status_code == 200
    got = receiver.wait_for(2) + other.wait_for(1)
    assert sorted(r.headers["x-shopify-topic"] for r in got) == [
        "orders/cancelled",
        "orders/updated",
        "orders/updated",
    ]
    assert len({r.headers["x-shopify-event-id"] for r in got}) == 1
    assert len({r.headers["x-shopify-webhook-id"] for r in got}) == 3
    for delivery in got:
        assert delivery.payload["cancelled_at"] is not None
        assert delivery.payload["cancel_reason"] == "customer"
        assert delivery.payload["updated_at"] > order["updated_at"]


def test_changes_fire_the_topics_shopify_fires(
    sandbox: SandboxServer, shops: Shops, receiver_factory: Callable[..., Receiver]
) -> None:
    shop = shops.create(products=3, seed=1)
    receiver = receiver_factory()
    for topic in (
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/edited",
        "fulfillments/create",
        "fulfillments/update",
        "inventory_levels/update",
        "orders/fulfilled",
    ):
        subscribe(shop, topic, receiver.url)

    def topics_after(action: Callable[[], Any], count: int) -> list[str]:
        before = len(receiver.received)
        action()
        received = receiver.wait_for(before + count)
        return sorted(r.headers["x-shopify-topic"] for r in received[before:])

    state_shop = sandbox.state.shops[shop.domain]
    variant = next(iter(state_shop.variants.values()))
    location = shop.info["location_ids"][0]
    stocked = (variant.inventory_item_id, location) in state_shop.levels
    created: dict[str, Any] = {}

    def create() -> None:
        created.update(new_order(sandbox, shop, financial_status="pending"))

    assert topics_after(create, 2 if stocked else 1) == sorted(
        ["orders/create"] + (["inventory_levels/update"] if stocked else [])
    )  # units move from available to committed
    order_id = created["id"]
    assert topics_after(lambda: shop.control.post(f"/orders/{order_id}/pay"), 2) == [
        "orders/paid",
        "orders/updated",
    ]
    line_id = created["line_items"][0]["id"]
    edit = {
        "note": "gift",
        "add_line_items": [{"title": "Gift wrapping", "price": "3.50", "quantity": 1}],
    }
    assert topics_after(lambda: shop.control.patch(f"/orders/{order_id}", json=edit), 2) == [
        "orders/edited",
        "orders/updated",
    ]
    edited = [r for r in receiver.received if r.headers["x-shopify-topic"] == "orders/edited"]
    additions = edited[-1].payload["order_edit"]["line_items"]["additions"]
    assert additions[0]["delta"] == 1
    assert additions[0]["id"] != line_id
    (fo,) = shop.api.get(f"/orders/{order_id}/fulfillment_orders.json").json()["fulfillment_orders"]
    fulfil = {
        "fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id": fo["id"]}]}
    }
    fulfillment: dict[str, Any] = {}

    def ship() -> None:
        fulfillment.update(shop.api.post("/fulfillments.json", json=fulfil).json()["fulfillment"])

    assert topics_after(ship, 3) == ["fulfillments/create", "orders/fulfilled", "orders/updated"]
    track = {"fulfillment": {"tracking_info": {"number": "1Z999", "company": "UPS"}}}
    assert topics_after(
        lambda: shop.api.post(
            f"/fulfillments/{fulfillment['id']}/update_tracking.json", json=track
        ),
        1,
    ) == ["fulfillments/update"]
    update = [r for r in receiver.received if r.headers["x-shopify-topic"] == "fulfillments/update"]
    assert update[-1].payload["tracking_number"] == "1Z999"

    item, loc = next(iter(state_shop.levels))
    change = {"inventory_item_id": item, "location_id": loc, "available": 123}
    assert topics_after(lambda: shop.control.post("/inventory_levels", json=change), 1) == [
        "inventory_levels/update"
    ]
    level = receiver.received[-1].payload
    assert (level["inventory_item_id"], level["location_id"], level["available"]) == (
        item,
        loc,
        123,
    )
    assert level["admin_graphql_api_id"] == (
        f"gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}"
    )
