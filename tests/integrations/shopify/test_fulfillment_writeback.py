"""Fulfilments made in Rappit, written to a simulated Shopify store over real HTTP (the
sandbox): through the order's fulfilment order with tracking, in parts, with the echoing
webhooks matched (stock consumed once), a crash between Shopify's answer and storing it,
a refusal, and tracking changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from rappit.fulfillments.service import Tracking
from rappit.fulfillments.target import (
    ChannelFulfillmentRef,
    FulfillmentRefused,
    FulfillmentTarget,
    FulfillmentTargets,
    OutboundFulfillment,
    OutboundLine,
)
from rappit.fulfillments.tasks import WRITEBACK_JOB
from rappit.fulfillments.writeback import writeback_handler
from rappit.integrations.shopify.fulfillments import FulfillmentOrderLine, plan_lines
from rappit.integrations.shopify.orders import map_order
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.models import (
    Channel,
    ChannelType,
    Fulfillment,
    InventoryMovement,
    MovementReason,
    Order,
    OrderItem,
    StockLevel,
    WebhookEvent,
)
from rappit.orders.service import OrderService
from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext, PermanentJobError
from rappit.runtime import Runtime
from rappit.sandbox.shopify.server import SandboxServer
from rappit.sandbox.shopify.state import SandboxState
from rappit.wiring import Background, fulfillment_targets
from tests.conftest import Tenant, TestDatabase
from tests.integrations.shopify.test_webhook_processing import process_pending
from tests.support.factories import (
    TEST_SECRET_KEY,
    assert_ledger_replays,
    make_sku,
    make_warehouse,
)
from tests.support.factories import stock as add_stock
from tests.support.waiting import wait_until

API = "/admin/api/2026-10"
# Deliveries fail here at once and stay recorded with their signed body, for the test to post.
DEAD_ADDRESS = "http://127.0.0.1:9/webhooks/shopify"
TRACKING = {
    "number": "JD014600006281230704",
    "company": "DHL Express",
    "url": "https://www.dhl.com/track?id=JD014600006281230704",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(webhook_retry_delays=(), delete_failing_subscriptions=False)
    with SandboxServer(state) as server:
        yield server


@dataclass
class Store:
    sandbox: SandboxServer
    domain: str
    token: str
    channel: Channel
    order_id: uuid.UUID
    external_order_id: str
    # SKU code -> (Rappit order item id, Shopify line item id)
    lines: dict[str, tuple[uuid.UUID, str]]

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.sandbox.shop_url(self.domain)}{API}/{path}",
            headers={"X-Shopify-Access-Token": self.token},
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{self.sandbox.base_url}/_sandbox/shops/{self.domain}/{path}", **kwargs
        )
        response.raise_for_status()
        return response.json()

    def shop_fulfillments(self) -> list[dict[str, Any]]:
        fulfillments: list[dict[str, Any]] = self.admin(
            "GET", f"orders/{self.external_order_id}/fulfillments.json"
        )["fulfillments"]
        return fulfillments

    def fulfillment_order(self) -> dict[str, Any]:
        [fulfillment_order] = self.admin(
            "GET", f"orders/{self.external_order_id}/fulfillment_orders.json"
        )["fulfillment_orders"]
        return dict(fulfillment_order)

    def operations(self) -> dict[str, int]:
        """GraphQL calls Rappit made to the shop, by root field."""
        return dict(self.control("GET", "requests")["operations"])

    def units(self, fulfillment: dict[str, Any]) -> dict[str, int]:
        """A Shopify fulfilment's units per SKU code."""
        code = {shop_line: sku for sku, (_, shop_line) in self.lines.items()}
        return {code[str(line["id"])]: line["quantity"] for line in fulfillment["line_items"]}


def _create_shop(sandbox: SandboxServer, domain: str) -> dict[str, Any]:
    created = httpx.post(
        f"{sandbox.base_url}/_sandbox/shops",
        json={"domain": domain, "generate": {"products": 4, "seed": 11}},
    )
    created.raise_for_status()
    info: dict[str, Any] = created.json()["shop"]
    return info


@pytest.fixture
async def store(sandbox: SandboxServer, database: TestDatabase, tenant: Tenant) -> Store:
    """A shop with two products, webhooks for fulfilments, and one paid order (3 x A, 2 x B)
    known to Rappit, which holds 10 of each SKU."""
    domain = f"fulfil-{uuid.uuid4().hex[:10]}.myshopify.com"
    shop_info = _create_shop(sandbox, domain)
    shop = sandbox.state.shops[domain]
    codes = sorted(v.sku for v in shop.variants.values() if v.sku)
    sku_a, sku_b = [c for c in codes if codes.count(c) == 1][:2]
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        channel = Channel(
            organization_id=org,
            type=ChannelType.SHOPIFY,
            name="Fulfilment shop",
            shop_domain=domain,
            api_version="2026-10",
            api_base_url=sandbox.shop_url(domain),
            credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
                {"access_token": shop_info["access_token"], "webhook_secret": shop.webhook_secret}
            ),
            settings={},
            sync_cursors={},
        )
        session.add(channel)
        warehouse = await make_warehouse(session, org, "MAIN")
        for code in (sku_a, sku_b):
            await add_stock(session, org, await make_sku(session, org, code), warehouse, 10)
    store = Store(sandbox, domain, shop_info["access_token"], channel, uuid.uuid4(), "", {})
    for topic in ("fulfillments/create", "fulfillments/update"):
        store.admin(
            "POST",
            "webhooks.json",
            json={"webhook": {"topic": topic, "address": f"{DEAD_ADDRESS}/{topic}"}},
        )
    order_json = store.control(
        "POST",
        "orders",
        json={"line_items": [{"sku": sku_a, "quantity": 3}, {"sku": sku_b, "quantity": 2}]},
    )["order"]
    async with unit_of_work(database.sessionmaker) as session:
        stored = await session.get_one(Channel, channel.id)
        result = await OrderService(session, org).create_or_update_from_channel(
            stored, map_order(order_json)
        )
        items = {
            item.sku_code: (item.id, item.external_item_id)
            for item in await OrderService(session, org).repository.items(result.order.id)
        }
    store.order_id = result.order.id
    store.external_order_id = str(order_json["id"])
    store.lines = {"A": items[sku_a], "B": items[sku_b]}
    return store


class CrashAfterCreate:
    """Shopify makes the fulfilment, then the worker dies before the answer is stored."""

    def __init__(self, real: FulfillmentTarget) -> None:
        self.real = real

    async def create(
        self, channel: Channel, fulfillment: OutboundFulfillment
    ) -> ChannelFulfillmentRef:
        await self.real.create(channel, fulfillment)
        raise ConnectionResetError("the worker died with Shopify's answer in flight")

    async def update_tracking(
        self, channel: Channel, external_fulfillment_id: str, tracking: Tracking, **kw: Any
    ) -> None:
        await self.real.update_tracking(channel, external_fulfillment_id, tracking, **kw)


def crashing(runtime: Runtime) -> FulfillmentTargets:
    real = fulfillment_targets(runtime).get(ChannelType.SHOPIFY)
    assert real is not None
    targets = FulfillmentTargets()
    targets.register(ChannelType.SHOPIFY, CrashAfterCreate(real))
    return targets


async def write_back(
    runtime: Runtime,
    fulfillment_id: str,
    *,
    attempt: int = 1,
    targets: FulfillmentTargets | None = None,
) -> object:
    """Run the fulfilment's write-back job as a worker would."""
    handler = writeback_handler(runtime.sessionmaker, targets or fulfillment_targets(runtime))
    async with runtime.sessionmaker() as session:
        org = (await session.get_one(Fulfillment, uuid.UUID(fulfillment_id))).organization_id
    return await handler(
        JobContext(
            QueueName.CHANNEL_SYNC,
            WRITEBACK_JOB,
            f"fulfillment-writeback.{fulfillment_id}",
            {"organization_id": str(org), "fulfillment_id": fulfillment_id},
            attempt,
            3,
        )
    )


async def fulfil(
    api: httpx.AsyncClient,
    store: Store,
    units: dict[str, int],
    *,
    tracking: dict[str, str] | None = None,
    notify: bool = False,
) -> dict[str, Any]:
    response = await api.post(
        f"/api/v1/orders/{store.order_id}/fulfillments",
        json={
            "items": [
                {"order_item_id": str(store.lines[code][0]), "quantity": quantity}
                for code, quantity in units.items()
            ],
            "tracking": tracking,
            "notify_customer": notify,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def rappit_state(
    database: TestDatabase, store: Store
) -> tuple[str, dict[str, tuple[int, int]], dict[str, int]]:
    """(order status, (on hand, reserved) per line's SKU, units consumed per line's SKU)."""
    async with database.sessionmaker() as session:
        order = await session.get_one(Order, store.order_id)
        items = {i.id: i for i in (await session.scalars(select(OrderItem))).all()}
        sku_by_line = {code: items[item_id].sku_id for code, (item_id, _) in store.lines.items()}
        levels = {
            level.sku_id: (level.on_hand, level.reserved)
            for level in (await session.scalars(select(StockLevel))).all()
        }
        consumed: dict[str, int] = {}
        for code, sku_id in sku_by_line.items():
            moves = (
                await session.scalars(
                    select(InventoryMovement).where(
                        InventoryMovement.sku_id == sku_id,
                        InventoryMovement.reason == MovementReason.CONSUMPTION,
                    )
                )
            ).all()
            consumed[code] = -sum(m.on_hand_delta for m in moves)
        await assert_ledger_replays(session, order.organization_id)
        return (
            order.status,
            {code: levels[sku_id] for code, sku_id in sku_by_line.items() if sku_id},
            consumed,
        )


async def deliver(
    webhook_client: httpx.AsyncClient, database: TestDatabase, store: Store, topic: str
) -> list[WebhookEvent]:
    """Post the sandbox's signed deliveries of ``topic`` (as Shopify sent them) to Rappit and
    process them."""
    shop = store.sandbox.state.shops[store.domain]
    for delivery in [d for d in shop.deliveries if d.topic == topic]:
        response = await webhook_client.post(
            f"/webhooks/shopify/{topic}", content=delivery.body, headers=delivery.headers
        )
        assert response.status_code == 200, response.text
    return [e for e in await process_pending(database) if e.topic == topic]


async def test_a_fulfilment_with_tracking_reaches_shopify_through_its_fulfilment_order(
    queue_runtime: Runtime,
    api_for_shop: httpx.AsyncClient,
    database: TestDatabase,
    store: Store,
    queue_client: QueueClient,
) -> None:
    made = await fulfil(api_for_shop, store, {"A": 2}, tracking=TRACKING, notify=True)

    assert (made["status"], made["sync_status"], made["external_fulfillment_id"]) == (
        "pending",
        "pending",
        None,
    )
    assert made["tracking"] == TRACKING
    # Recorded and consumed at once: 2 of the 3 reserved units of A left the warehouse.
    assert await rappit_state(database, store) == (
        "PARTIALLY_FULFILLED",
        {"A": (8, 1), "B": (10, 2)},
        {"A": 2, "B": 0},
    )
    job_id = f"fulfillment-writeback.{made['id']}"
    assert await queue_client.job_state(QueueName.CHANNEL_SYNC, job_id) == "waiting"
    assert store.shop_fulfillments() == []

    await write_back(queue_runtime, made["id"])

    stored = (await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")).json()
    assert (stored["status"], stored["sync_status"], stored["sync_error"]) == (
        "success",
        "synced",
        None,
    )
    [shop_fulfillment] = store.shop_fulfillments()
    assert stored["external_fulfillment_id"] == str(shop_fulfillment["id"])
    assert (
        shop_fulfillment["tracking_number"],
        shop_fulfillment["tracking_company"],
        shop_fulfillment["tracking_url"],
    ) == (TRACKING["number"], TRACKING["company"], TRACKING["url"])
    assert store.units(shop_fulfillment) == {"A": 2}
    assert (
        store.sandbox.state.shops[store.domain].fulfillments[shop_fulfillment["id"]].notify_customer
    )
    fulfillment_order = store.fulfillment_order()
    assert fulfillment_order["status"] == "in_progress"
    open_units = {
        str(line["line_item_id"]): line["fulfillable_quantity"]
        for line in fulfillment_order["line_items"]
    }
    assert open_units == {store.lines["A"][1]: 1, store.lines["B"][1]: 2}
    # Read the fulfilment orders, created on them: GraphQL only, never the removed
    # order-scoped REST endpoint.
    assert store.operations() == {"order": 1, "fulfillmentCreate": 1}
    recent = store.control("GET", "requests")["recent"]
    assert not [r for r in recent if r["method"] == "POST" and "fulfillments.json" in r["path"]]


async def test_a_worker_writes_the_fulfilment_back_after_the_request(
    queue_runtime: Runtime, api_for_shop: httpx.AsyncClient, store: Store
) -> None:
    background = Background(queue_runtime, queues=[QueueName.CHANNEL_SYNC], run_scheduler=False)
    background.start()
    try:
        made = await fulfil(api_for_shop, store, {"B": 2}, tracking=TRACKING)

        async def synced() -> bool:
            response = await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")
            return bool(response.json()["sync_status"] == "synced")

        await wait_until(synced, timeout=30, message="the write-back job by a worker")
    finally:
        assert await background.stop() is True
    [shop_fulfillment] = store.shop_fulfillments()
    assert (store.units(shop_fulfillment), shop_fulfillment["tracking_number"]) == (
        {"B": 2},
        TRACKING["number"],
    )


async def test_two_partial_fulfilments_close_the_fulfilment_order_only_when_complete(
    queue_runtime: Runtime, api_for_shop: httpx.AsyncClient, database: TestDatabase, store: Store
) -> None:
    first = await fulfil(api_for_shop, store, {"A": 1}, tracking={"number": "PART-1"})
    await write_back(queue_runtime, first["id"])
    assert store.fulfillment_order()["status"] == "in_progress"

    second = await fulfil(api_for_shop, store, {"A": 2, "B": 2}, tracking={"number": "PART-2"})
    await write_back(queue_runtime, second["id"])

    shop_fulfillments = store.shop_fulfillments()
    assert [(f["tracking_number"], store.units(f)) for f in shop_fulfillments] == [
        ("PART-1", {"A": 1}),
        ("PART-2", {"A": 2, "B": 2}),
    ]
    assert store.fulfillment_order()["status"] == "closed"
    shop_order = store.admin("GET", f"orders/{store.external_order_id}.json")["order"]
    assert shop_order["fulfillment_status"] == "fulfilled"
    assert await rappit_state(database, store) == (
        "FULFILLED",
        {"A": (7, 0), "B": (8, 0)},
        {"A": 3, "B": 2},
    )
    listed = (await api_for_shop.get(f"/api/v1/orders/{store.order_id}/fulfillments")).json()
    assert [(f["external_fulfillment_id"], f["sync_status"]) for f in listed["items"]] == [
        (str(shop_fulfillments[0]["id"]), "synced"),
        (str(shop_fulfillments[1]["id"]), "synced"),
    ]


async def test_the_echoing_webhook_is_matched_and_consumes_nothing_again(
    queue_runtime: Runtime,
    api_for_shop: httpx.AsyncClient,
    webhook_client: httpx.AsyncClient,
    database: TestDatabase,
    store: Store,
) -> None:
    made = await fulfil(api_for_shop, store, {"A": 2}, tracking=TRACKING)
    await write_back(queue_runtime, made["id"])

    [event] = await deliver(webhook_client, database, store, "fulfillments/create")

    assert (event.status, event.error) == ("COMPLETED", "matched a recorded fulfilment")
    assert await rappit_state(database, store) == (
        "PARTIALLY_FULFILLED",
        {"A": (8, 1), "B": (10, 2)},
        {"A": 2, "B": 0},
    )
    async with database.sessionmaker() as session:
        [fulfillment] = (await session.scalars(select(Fulfillment))).all()
    assert (fulfillment.status, fulfillment.tracking_number) == ("success", TRACKING["number"])


async def test_an_echo_before_the_id_is_stored_is_matched_by_its_lines(
    queue_runtime: Runtime,
    api_for_shop: httpx.AsyncClient,
    webhook_client: httpx.AsyncClient,
    database: TestDatabase,
    store: Store,
) -> None:
    made = await fulfil(api_for_shop, store, {"A": 2, "B": 1}, tracking=TRACKING)
    with pytest.raises(ConnectionResetError):
        await write_back(queue_runtime, made["id"], targets=crashing(queue_runtime))
    pending = (await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")).json()
    assert (pending["sync_status"], pending["external_fulfillment_id"]) == ("pending", None)
    assert pending["sync_error"] == (
        "ConnectionResetError: the worker died with Shopify's answer in flight"
    )

    [event] = await deliver(webhook_client, database, store, "fulfillments/create")

    [shop_fulfillment] = store.shop_fulfillments()
    assert (event.status, event.error) == ("COMPLETED", "matched a fulfilment Rappit is creating")
    claimed = (await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")).json()
    assert claimed["external_fulfillment_id"] == str(shop_fulfillment["id"])
    assert await rappit_state(database, store) == (
        "PARTIALLY_FULFILLED",
        {"A": (8, 1), "B": (9, 1)},
        {"A": 2, "B": 1},
    )

    # The job's next attempt finds the id stored and creates nothing.
    await write_back(queue_runtime, made["id"], attempt=2)
    assert len(store.shop_fulfillments()) == 1
    assert store.operations()["fulfillmentCreate"] == 1
    done = (await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")).json()
    assert (done["status"], done["sync_status"], done["sync_error"]) == ("success", "synced", None)


async def test_a_retry_after_a_crash_between_the_call_and_storing_the_id_creates_no_second(
    queue_runtime: Runtime, api_for_shop: httpx.AsyncClient, database: TestDatabase, store: Store
) -> None:
    made = await fulfil(api_for_shop, store, {"A": 3}, tracking=TRACKING)
    with pytest.raises(ConnectionResetError):
        await write_back(queue_runtime, made["id"], targets=crashing(queue_runtime))
    [shop_fulfillment] = store.shop_fulfillments()

    await write_back(queue_runtime, made["id"], attempt=2)

    assert len(store.shop_fulfillments()) == 1
    # The retry read the order's fulfilments, found the one the lost call made, adopted it.
    assert store.operations() == {"order": 2, "fulfillmentCreate": 1}
    done = (await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")).json()
    assert (done["external_fulfillment_id"], done["status"], done["sync_status"]) == (
        str(shop_fulfillment["id"]),
        "success",
        "synced",
    )
    assert await rappit_state(database, store) == (
        "PARTIALLY_FULFILLED",
        {"A": (7, 0), "B": (10, 2)},
        {"A": 3, "B": 0},
    )


async def test_a_crash_then_new_tracking_adopts_the_fulfilment_and_sends_the_tracking(
    queue_runtime: Runtime, api_for_shop: httpx.AsyncClient, store: Store
) -> None:
    made = await fulfil(api_for_shop, store, {"B": 2}, tracking={"number": "OLD-1"})
    with pytest.raises(ConnectionResetError):
        await write_back(queue_runtime, made["id"], targets=crashing(queue_runtime))
    changed = await api_for_shop.patch(
        f"/api/v1/fulfillments/{made['id']}", json={"tracking": {"number": "NEW-2"}}
    )
    assert changed.status_code == 200, changed.text

    await write_back(queue_runtime, made["id"], attempt=2)

    [shop_fulfillment] = store.shop_fulfillments()
    assert shop_fulfillment["tracking_number"] == "NEW-2"
    assert store.operations() == {
        "order": 2,
        "fulfillmentCreate": 1,
        "fulfillmentTrackingInfoUpdate": 1,
    }
    done = (await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")).json()
    assert (done["external_fulfillment_id"], done["sync_status"]) == (
        str(shop_fulfillment["id"]),
        "synced",
    )


async def test_new_tracking_reaches_shopify_and_its_echo_changes_nothing(
    queue_runtime: Runtime,
    api_for_shop: httpx.AsyncClient,
    webhook_client: httpx.AsyncClient,
    database: TestDatabase,
    store: Store,
) -> None:
    made = await fulfil(api_for_shop, store, {"A": 1}, tracking={"number": "FIRST-1"})
    await write_back(queue_runtime, made["id"])
    new_tracking = {
        "number": "794644790138",
        "company": "FedEx",
        "url": "https://www.fedex.com/fedextrack/?trknbr=794644790138",
    }

    response = await api_for_shop.patch(
        f"/api/v1/fulfillments/{made['id']}",
        json={"tracking": new_tracking, "notify_customer": True},
    )

    assert response.status_code == 200, response.text
    assert (response.json()["tracking"], response.json()["sync_status"]) == (
        new_tracking,
        "pending",
    )
    await write_back(queue_runtime, made["id"])
    [shop_fulfillment] = store.shop_fulfillments()
    assert (
        shop_fulfillment["tracking_number"],
        shop_fulfillment["tracking_company"],
        shop_fulfillment["tracking_url"],
    ) == (new_tracking["number"], new_tracking["company"], new_tracking["url"])
    assert (
        store.sandbox.state.shops[store.domain].fulfillments[shop_fulfillment["id"]].notify_customer
    )
    assert store.operations()["fulfillmentTrackingInfoUpdate"] == 1

    events = await deliver(webhook_client, database, store, "fulfillments/update")
    created = await deliver(webhook_client, database, store, "fulfillments/create")
    assert [(e.status, e.error) for e in events + created] == [
        ("COMPLETED", "matched a recorded fulfilment")
    ] * 2
    stored = (await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")).json()
    assert (stored["tracking"], stored["sync_status"]) == (new_tracking, "synced")
    assert await rappit_state(database, store) == (
        "PARTIALLY_FULFILLED",
        {"A": (9, 2), "B": (10, 2)},
        {"A": 1, "B": 0},
    )


async def test_an_order_cancelled_in_shopify_fails_the_write_with_the_reason_shown(
    queue_runtime: Runtime, api_for_shop: httpx.AsyncClient, database: TestDatabase, store: Store
) -> None:
    made = await fulfil(api_for_shop, store, {"A": 2}, tracking=TRACKING)
    store.control("POST", f"orders/{store.external_order_id}/cancel", json={})

    with pytest.raises(PermanentJobError, match="cancelled in Shopify"):
        await write_back(queue_runtime, made["id"])

    failed = (await api_for_shop.get(f"/api/v1/fulfillments/{made['id']}")).json()
    assert (failed["status"], failed["sync_status"], failed["sync_error"]) == (
        "failed",
        "failed",
        f"order {store.external_order_id} was cancelled in Shopify",
    )
    assert store.shop_fulfillments() == []
    assert "fulfillmentCreate" not in store.operations()
    # The goods left the warehouse: the stock stays consumed.
    assert (await rappit_state(database, store))[1:] == (
        {"A": (8, 1), "B": (10, 2)},
        {"A": 2, "B": 0},
    )


def _outbound(*lines: tuple[str, int]) -> OutboundFulfillment:
    return OutboundFulfillment(
        external_order_id="1",
        lines=tuple(OutboundLine(item, units) for item, units in lines),
        tracking=Tracking(),
        notify_customer=False,
    )


def test_a_line_split_over_two_fulfilment_orders_takes_from_both_in_order() -> None:
    open_lines = [
        FulfillmentOrderLine("gid://shopify/FulfillmentOrder/1", "fol-1", "11", remaining=1),
        FulfillmentOrderLine("gid://shopify/FulfillmentOrder/2", "fol-2", "11", remaining=4),
        FulfillmentOrderLine("gid://shopify/FulfillmentOrder/2", "fol-3", "12", remaining=1),
    ]

    groups = plan_lines(_outbound(("11", 3), ("12", 1)), open_lines)

    assert groups == [
        {
            "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1",
            "fulfillmentOrderLineItems": [{"id": "fol-1", "quantity": 1}],
        },
        {
            "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/2",
            "fulfillmentOrderLineItems": [
                {"id": "fol-2", "quantity": 2},
                {"id": "fol-3", "quantity": 1},
            ],
        },
    ]


def test_more_units_than_shopify_has_open_is_a_refusal() -> None:
    open_lines = [FulfillmentOrderLine("gid://shopify/FulfillmentOrder/1", "fol-1", "11", 2)]

    with pytest.raises(FulfillmentRefused, match="has 2 unit\\(s\\) of line item 11 left"):
        plan_lines(_outbound(("11", 3)), open_lines)
    with pytest.raises(FulfillmentRefused, match="has 0 unit\\(s\\) of line item 12 left"):
        plan_lines(_outbound(("12", 1)), open_lines)
