"""The initial import of a Shopify store through a GraphQL bulk operation, against the sandbox
over real HTTP: 10,000 generated orders match the store exactly (statuses, totals, lines,
reservations, watermark), the import equals a REST pull order for order, a crash resumes
without duplicates (and an expired result file starts a new operation), a FAILED operation
fails the run, and a webhook after the import still makes one order."""

from __future__ import annotations

import gc
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from rappit.integrations.shopify import bulk_import, bulk_reader
from rappit.integrations.shopify.graphql_orders import rest_order, shop_zone
from rappit.integrations.shopify.orders import map_order
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.models import (
    Channel,
    ChannelType,
    InventoryMovement,
    Order,
    OrderItem,
    Reservation,
    Sku,
    StockLevel,
    SyncResource,
    SyncRun,
)
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext, PermanentJobError
from rappit.runtime import Runtime
from rappit.sandbox.shopify import payloads
from rappit.sandbox.shopify.generator import generate
from rappit.sandbox.shopify.server import SandboxServer
from rappit.sandbox.shopify.state import LineItem as ShopLineItem
from rappit.sandbox.shopify.state import Order as ShopOrder
from rappit.sandbox.shopify.state import Shop
from rappit.sync.processing import run_handler
from rappit.sync.service import start_run
from rappit.wiring import sync_pullers
from tests.conftest import Tenant, TestDatabase, make_tenant
from tests.support.factories import TEST_SECRET_KEY, make_sku, make_warehouse, stock

BIG = "big-import.myshopify.com"
SMALL = "small-import.myshopify.com"
CRASH = "crash-import.myshopify.com"
FAIL = "fail-import.myshopify.com"
PLENTY = 1_000_000


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        for domain, products, orders, seed in (
            (BIG, 40, 10_000, 11),
            (SMALL, 25, 600, 7),
            (CRASH, 20, 800, 3),
            (FAIL, 5, 20, 5),
        ):
            server.call(lambda d=domain: server.state.create_shop(d, access_token=f"shpat_{d[:5]}"))
            server.call(
                lambda d=domain, p=products, o=orders, s=seed: generate(
                    server.state, d, products=p, orders=o, seed=s
                )
            )
        yield server


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_import, "POLL_FIRST_S", 0.05)
    monkeypatch.setattr(bulk_import, "POLL_MAX_S", 0.5)


async def _channel(
    database: TestDatabase,
    tenant: Tenant,
    sandbox: SandboxServer,
    domain: str,
    *,
    known_as: str | None = None,
) -> Channel:
    """A channel of the sandbox shop ``domain`` (under another name with ``known_as``: a
    domain is one channel per deployment)."""
    shop = sandbox.state.shops[domain]
    async with unit_of_work(database.sessionmaker) as session:
        channel = Channel(
            organization_id=tenant.organization_id,
            type=ChannelType.SHOPIFY,
            name=domain,
            shop_domain=known_as or domain,
            api_version="2026-10",
            api_base_url=sandbox.shop_url(domain),
            credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
                {"access_token": shop.access_token, "webhook_secret": shop.webhook_secret}
            ),
            settings={},
            sync_cursors={},
        )
        session.add(channel)
    return channel


def _codes(shop: Shop) -> list[str]:
    return sorted(
        {v.sku for p in shop.products.values() for v in p.variants if v.sku},
    )


async def _stock_skus(
    database: TestDatabase,
    tenant: Tenant,
    codes: list[str],
    units: int | dict[str, int] = PLENTY,
) -> None:
    """One warehouse holding ``units`` of each code (a dict: its codes, at its amounts)."""
    async with unit_of_work(database.sessionmaker) as session:
        warehouse = await make_warehouse(session, tenant.organization_id, "MAIN")
        for code in codes:
            sku = await make_sku(session, tenant.organization_id, code)
            if isinstance(units, int):
                await stock(session, tenant.organization_id, sku, warehouse, units)
            elif code in units:  # a stock row, maybe at zero; unlisted codes get none
                await stock(session, tenant.organization_id, sku, warehouse, units[code])


async def _control(url: str, json: dict[str, Any] | None = None) -> httpx.Response:
    """A call to the sandbox's control API (what happens behind the client's back)."""
    async with httpx.AsyncClient() as http:
        return await http.post(url, json=json)


def _job(run: SyncRun, attempt: int = 1) -> JobContext:
    context = {"organization_id": str(run.organization_id), "run_id": str(run.id)}
    return JobContext(QueueName.SHOPIFY_SYNC, "sync.run", f"sync-run.{run.id}", context, attempt, 5)


async def _start(runtime: Runtime, channel: Channel, resource: SyncResource) -> SyncRun:
    async with unit_of_work(runtime.sessionmaker) as session:
        run, _ = await start_run(
            session, channel.organization_id, channel.id, resource, send_job=False
        )
    return run


async def _run(runtime: Runtime, channel: Channel, resource: SyncResource) -> SyncRun:
    run = await _start(runtime, channel, resource)
    await run_handler(runtime.sessionmaker, sync_pullers(runtime))(_job(run))
    async with runtime.sessionmaker() as session:
        return await session.get_one(SyncRun, run.id)


def _owes_stock(order: ShopOrder) -> bool:
    return order.cancelled_at is None and order.financial_status in (
        "paid",
        "partially_paid",
        "partially_refunded",
    )


def _shipped(order: ShopOrder, line: ShopLineItem) -> int:
    """Units of the line the store has fulfilled (historic shipments: no webhook will tell)."""
    return 0 if order.cancelled_at else min(line.fulfilled_quantity, line.current_quantity)


def _expected_status(order: ShopOrder, codes: set[str]) -> str:
    if order.cancelled_at is not None:
        return "CANCELLED"
    ordered = sum(line.current_quantity for line in order.line_items)
    shipped = sum(_shipped(order, line) for line in order.line_items)
    if ordered and shipped >= ordered:
        return "FULFILLED"
    if any(
        line.sku not in codes and line.current_quantity > _shipped(order, line)
        for line in order.line_items
    ):
        return "NEEDS_ATTENTION"
    if shipped:
        return "PARTIALLY_FULFILLED"
    return "RESERVED" if _owes_stock(order) else "PENDING"


async def _stored(database: TestDatabase, channel: Channel) -> dict[str, Any]:
    """Per external order id: the order row, its items by external id and reserved units per
    item; plus stock per SKU code and the ledger's reserved total."""
    async with database.sessionmaker() as session:
        orders = {
            o.external_order_id: o
            for o in (
                await session.scalars(select(Order).where(Order.channel_id == channel.id))
            ).all()
        }
        items: dict[uuid.UUID, dict[str, OrderItem]] = defaultdict(dict)
        for item in (await session.scalars(select(OrderItem))).all():
            items[item.order_id][item.external_item_id] = item
        held: dict[uuid.UUID, int] = defaultdict(int)
        for reservation in (
            await session.scalars(select(Reservation).where(Reservation.released_at.is_(None)))
        ).all():
            held[reservation.order_item_id] += reservation.quantity
        levels = {
            code: (on_hand, reserved)
            for code, on_hand, reserved in await session.execute(
                select(Sku.code, StockLevel.on_hand, StockLevel.reserved).join(
                    StockLevel, StockLevel.sku_id == Sku.id
                )
            )
        }
        ledger = await session.scalar(select(func.sum(InventoryMovement.reserved_delta)))
    return {"orders": orders, "items": items, "held": held, "levels": levels, "ledger": ledger}


async def test_ten_thousand_orders_match_the_store(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant, sandbox: SandboxServer
) -> None:
    shop = sandbox.state.shops[BIG]
    codes = _codes(shop)
    known = set(codes[5:])  # a few SKUs are unknown to Rappit: their orders need attention
    await _stock_skus(database, tenant, sorted(known))
    channel = await _channel(database, tenant, sandbox, BIG)

    run = await _run(queue_runtime, channel, SyncResource.IMPORT)

    assert (run.status, run.error, run.total) == ("COMPLETED", None, 10_000)
    assert (run.counts["fetched"], run.counts["created"]) == (10_000, 10_000)
    assert "invalid" not in run.counts
    assert "late" not in run.counts
    stored = await _stored(database, channel)
    assert len(stored["orders"]) == 10_000
    reserved_by_code: dict[str, int] = defaultdict(int)
    statuses: dict[str, int] = defaultdict(int)
    for shop_order in shop.orders.values():
        order = stored["orders"][str(shop_order.id)]
        totals = payloads.order_totals(shop_order)
        status = _expected_status(shop_order, known)
        statuses[status] += 1
        assert (order.status, order.payment_status, order.name) == (
            status,
            shop_order.financial_status,
            f"#{1000 + shop_order.number}",
        )
        assert order.total_price == Decimal(totals["total"]) / 100
        assert order.channel_updated_at.timestamp() == shop_order.updated_at
        assert (order.cancelled_at is None) == (shop_order.cancelled_at is None)
        items = stored["items"][order.id]
        assert len(items) == len(shop_order.line_items)
        for line in shop_order.line_items:
            item = items[str(line.id)]
            quantity = 0 if shop_order.cancelled_at else line.current_quantity
            shipped = _shipped(shop_order, line)
            assert (item.quantity, item.channel_fulfilled_quantity, item.sku_code, item.price) == (
                quantity,
                shipped,
                line.sku,
                Decimal(line.price_cents) / 100,
            )
            mapped = line.sku in known
            assert (item.sku_id is not None) == mapped
            # Shipped units left before the stock was counted: only the rest is held.
            owed = quantity - shipped if mapped and _owes_stock(shop_order) else 0
            assert stored["held"].get(item.id, 0) == owed
            if owed:
                reserved_by_code[str(line.sku)] += owed
    # Every kind of order is in the data, and the stock rows hold exactly what the lines do.
    assert all(
        statuses[s] > 0
        for s in (
            "RESERVED",
            "PENDING",
            "CANCELLED",
            "NEEDS_ATTENTION",
            "FULFILLED",
            "PARTIALLY_FULFILLED",
        )
    )
    assert stored["levels"] == {code: (PLENTY, reserved_by_code.get(code, 0)) for code in known}
    assert stored["ledger"] == sum(reserved_by_code.values())
    async with database.sessionmaker() as session:
        watermark = (await session.get_one(Channel, channel.id)).sync_cursors["orders"]
    newest = max(o.updated_at for o in shop.orders.values())
    assert watermark == payloads.iso(newest, shop.utc_offset_minutes)


async def test_the_import_equals_a_rest_pull_order_for_order(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant, sandbox: SandboxServer
) -> None:
    shop = sandbox.state.shops[SMALL]
    codes = _codes(shop)
    # Known SKUs with plenty, one at zero (backorders), one without any stock row, a few unknown.
    units = dict.fromkeys(codes[4:], PLENTY) | {codes[4]: 0}
    polled_tenant = await make_tenant(database, "Polled")
    for owner in (tenant, polled_tenant):
        await _stock_skus(database, owner, codes[3:], units)
    imported = await _channel(database, tenant, sandbox, SMALL)
    polled = await _channel(database, polled_tenant, sandbox, SMALL, known_as="twin.myshopify.com")

    imported_run = await _run(queue_runtime, imported, SyncResource.IMPORT)
    polled_run = await _run(queue_runtime, polled, SyncResource.ORDERS)

    assert imported_run.status == polled_run.status == "COMPLETED"
    assert imported_run.counts["created"] == polled_run.counts["created"] == 600
    mine, theirs = await _stored(database, imported), await _stored(database, polled)
    assert set(mine["orders"]) == set(theirs["orders"]) == {str(i) for i in shop.orders}
    columns = [c.key for c in Order.__table__.columns if c.key not in _ROW_KEYS]
    item_columns = [c.key for c in OrderItem.__table__.columns if c.key not in _ROW_KEYS]
    seen_statuses = set()
    for external_id, order in mine["orders"].items():
        other = theirs["orders"][external_id]
        assert {c: getattr(order, c) for c in columns} == {c: getattr(other, c) for c in columns}
        seen_statuses.add(order.status)
        items, other_items = mine["items"][order.id], theirs["items"][other.id]
        assert set(items) == set(other_items)
        for key, item in items.items():
            twin = other_items[key]
            assert {c: getattr(item, c) for c in item_columns if c != "sku_id"} == {
                c: getattr(twin, c) for c in item_columns if c != "sku_id"
            }
            assert (item.sku_id is None) == (twin.sku_id is None)
            assert mine["held"].get(item.id, 0) == theirs["held"].get(twin.id, 0)
    assert {
        "RESERVED",
        "BACKORDERED",
        "PARTIALLY_RESERVED",
        "NEEDS_ATTENTION",
        "FULFILLED",
        "PARTIALLY_FULFILLED",
    } <= seen_statuses
    assert mine["levels"] == theirs["levels"]
    assert mine["ledger"] == theirs["ledger"]
    async with database.sessionmaker() as session:
        marks = [
            (await session.get_one(Channel, c.id)).sync_cursors["orders"]
            for c in (imported, polled)
        ]
    assert marks[0] == marks[1]


_ROW_KEYS = {"id", "organization_id", "channel_id", "order_id", "created_at", "updated_at"}


def test_discounts_locations_and_attributes_take_the_rest_shape() -> None:
    node = {
        "id": "gid://shopify/Order/77",
        "name": "#1077",
        "number": 1077,
        "createdAt": "2025-07-01T10:00:00Z",
        "updatedAt": "2025-07-01T11:30:00Z",
        "displayFinancialStatus": "PARTIALLY_REFUNDED",
        "displayFulfillmentStatus": "IN_PROGRESS",
        "cancelReason": None,
        "currencyCode": "EUR",
        "tags": ["vip", "gift"],
        "customAttributes": [{"key": "gift_note", "value": "Happy birthday"}],
        "retailLocation": {"id": "gid://shopify/Location/9"},
        "totalPriceSet": {"shopMoney": {"amount": "45.00", "currencyCode": "EUR"}},
        "customer": {"id": "gid://shopify/Customer/5", "firstName": "Ada"},
    }
    money = {"shopMoney": {"amount": "5.00", "currencyCode": "EUR"}}
    children = [
        {
            "__typename": "LineItem",
            "id": "gid://shopify/LineItem/1",
            "quantity": 3,
            "currentQuantity": 2,
            "unfulfilledQuantity": 1,
            "variant": None,
            "product": {"id": "gid://shopify/Product/3"},
            "originalUnitPriceSet": {"shopMoney": {"amount": "20.00"}},
            "discountAllocations": [
                {"allocatedAmountSet": money, "discountApplication": {"index": 0}}
            ],
        },
        {
            "__typename": "DiscountCodeApplication",
            "index": 0,
            "code": "SUMMER",
            "allocationMethod": "ACROSS",
            "targetSelection": "ALL",
            "targetType": "LINE_ITEM",
            "value": {"__typename": "PricingPercentageValue", "percentage": 10.0},
        },
        {
            "__typename": "ManualDiscountApplication",
            "index": 1,
            "title": "Sorry",
            "description": "late delivery",
            "allocationMethod": "ONE",
            "targetSelection": "EXPLICIT",
            "targetType": "SHIPPING_LINE",
            "value": {"__typename": "MoneyV2", "amount": "4.90", "currencyCode": "EUR"},
        },
    ]
    converted = rest_order(node, children, shop_zone("Europe/Berlin", None))
    assert converted["created_at"] == "2025-07-01T12:00:00+02:00"  # summer time
    assert (converted["order_number"], converted["number"]) == (1077, 77)
    assert (converted["financial_status"], converted["fulfillment_status"]) == (
        "partially_refunded",
        None,
    )
    assert (converted["tags"], converted["location_id"]) == ("vip, gift", 9)
    assert converted["note_attributes"] == [{"name": "gift_note", "value": "Happy birthday"}]
    assert converted["discount_codes"] == [
        {"code": "SUMMER", "amount": "5.00", "type": "percentage"}
    ]
    assert converted["discount_applications"] == [
        {
            "type": "discount_code",
            "value": "10.0",
            "value_type": "percentage",
            "allocation_method": "across",
            "target_selection": "all",
            "target_type": "line_item",
            "code": "SUMMER",
        },
        {
            "type": "manual",
            "value": "4.90",
            "value_type": "fixed_amount",
            "allocation_method": "one",
            "target_selection": "explicit",
            "target_type": "shipping_line",
            "title": "Sorry",
            "description": "late delivery",
        },
    ]
    mapped = map_order(converted)
    assert (mapped.external_order_id, mapped.external_location_id, mapped.customer) == (
        "77",
        "9",
        {"id": "5", "first_name": "Ada"},
    )
    (line,) = mapped.lines
    assert (
        line.external_item_id,
        line.quantity,
        line.channel_fulfilled_quantity,
        line.external_variant_id,
        line.price,
    ) == ("1", 2, 1, None, Decimal("20.00"))


def _read(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Read the result file in this process ("here") or in a reader process ("elsewhere"),
    whatever its size."""
    monkeypatch.setattr(bulk_reader, "READ_ELSEWHERE_FROM", 0 if where == "elsewhere" else 10**9)


async def test_a_crash_mid_import_resumes_without_duplicates(
    queue_runtime: Runtime,
    database: TestDatabase,
    tenant: Tenant,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (Resuming with the reader in a process of its own: the reader-death test below.)
    shop = sandbox.state.shops[CRASH]
    await _stock_skus(database, tenant, _codes(shop))
    channel = await _channel(database, tenant, sandbox, CRASH)
    original = bulk_import.apply_orders
    pages = {"applied": 0}

    async def crash_on_third_page(*args: Any) -> Any:
        pages["applied"] += 1
        if pages["applied"] == 3:
            raise ConnectionResetError("database connection lost")
        return await original(*args)

    monkeypatch.setattr(bulk_import, "apply_orders", crash_on_third_page)
    operations_before = len(shop.bulk_operations)
    run = await _start(queue_runtime, channel, SyncResource.IMPORT)
    handler = run_handler(queue_runtime.sessionmaker, sync_pullers(queue_runtime))
    with pytest.raises(ConnectionResetError):
        await handler(_job(run, attempt=1))
    async with database.sessionmaker() as session:
        halfway = await session.get_one(SyncRun, run.id)
        assert (halfway.status, halfway.counts["created"]) == ("PENDING", 500)
        assert halfway.cursor["lines"] > 0
        assert halfway.cursor["url"]
        assert await session.scalar(select(func.count()).select_from(Order)) == 500

    await handler(_job(run, attempt=2))
    async with database.sessionmaker() as session:
        done = await session.get_one(SyncRun, run.id)
        assert (done.status, done.counts["created"], done.total) == ("COMPLETED", 800, 800)
        assert await session.scalar(select(func.count()).select_from(Order)) == 800
        reserved = await session.scalar(select(func.sum(StockLevel.reserved)))
        held = await session.scalar(select(func.sum(Reservation.quantity)))
        assert (
            reserved
            == held
            == await session.scalar(select(func.sum(InventoryMovement.reserved_delta)))
        )
    # The second attempt went on with the first attempt's operation and file.
    assert len(shop.bulk_operations) == operations_before + 1


@pytest.mark.parametrize("reader", ["here", "elsewhere"])
async def test_an_expired_result_starts_a_new_operation(
    queue_runtime: Runtime,
    database: TestDatabase,
    tenant: Tenant,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    reader: str,
) -> None:
    _read(monkeypatch, reader)
    shop = sandbox.state.shops[CRASH]
    channel = await _channel(database, tenant, sandbox, CRASH)
    original = bulk_import.apply_orders
    pages = {"applied": 0}

    async def crash_on_second_page(*args: Any) -> Any:
        pages["applied"] += 1
        if pages["applied"] == 2:
            raise ConnectionResetError("worker killed")
        return await original(*args)

    monkeypatch.setattr(bulk_import, "apply_orders", crash_on_second_page)
    run = await _start(queue_runtime, channel, SyncResource.IMPORT)
    handler = run_handler(queue_runtime.sessionmaker, sync_pullers(queue_runtime))
    with pytest.raises(ConnectionResetError):
        await handler(_job(run, attempt=1))
    async with database.sessionmaker() as session:
        first_operation = (await session.get_one(SyncRun, run.id)).cursor["operation_id"]
    number = int(first_operation.rsplit("/", 1)[1])
    expired = await _control(
        f"{sandbox.base_url}/_sandbox/shops/{CRASH}/bulk_operations/{number}/expire"
    )
    assert expired.status_code == 200

    await handler(_job(run, attempt=2))
    async with database.sessionmaker() as session:
        done = await session.get_one(SyncRun, run.id)
        assert (done.status, done.counts["restarts"]) == ("COMPLETED", 1)
        assert done.cursor["operation_id"] != first_operation
        # 250 orders were applied twice (once per file); the second time changed nothing new.
        assert done.counts["created"] + done.counts["updated"] == 800 + 250
        assert done.counts["created"] == 800
        assert await session.scalar(select(func.count()).select_from(Order)) == 800
        assert await session.scalar(select(func.count()).select_from(OrderItem)) == sum(
            len(o.line_items) for o in shop.orders.values()
        )


async def test_children_away_from_their_order_are_collected_in_a_second_pass(
    queue_runtime: Runtime,
    database: TestDatabase,
    tenant: Tenant,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shopify promises only that children come after their parent: move the first order's
    line items to the end of the file."""
    shop = sandbox.state.shops[CRASH]
    channel = await _channel(database, tenant, sandbox, CRASH)
    original_wait = bulk_import._wait
    first_order = f"gid://shopify/Order/{min(shop.orders)}"

    async def wait_and_shuffle(client: Any, operation_id: str) -> Any:
        operation = await original_wait(client, operation_id)
        stored = shop.bulk_operations[int(operation_id.rsplit("/", 1)[1])].path
        assert stored is not None
        path = Path(stored)
        lines = path.read_text().splitlines()
        moved = [text for text in lines if json.loads(text).get("__parentId") == first_order]
        kept = [text for text in lines if text not in moved]
        path.write_text("\n".join(kept + moved) + "\n")
        return operation

    monkeypatch.setattr(bulk_import, "_wait", wait_and_shuffle)
    run = await _run(queue_runtime, channel, SyncResource.IMPORT)

    assert (run.status, run.counts["late"], run.counts["created"]) == ("COMPLETED", 1, 800)
    assert run.counts["updated"] == 1  # applied again, whole
    async with database.sessionmaker() as session:
        order = await session.scalar(
            select(Order).where(Order.external_order_id == first_order.rsplit("/", 1)[1])
        )
        assert order is not None
        items = await session.scalar(
            select(func.count()).select_from(OrderItem).where(OrderItem.order_id == order.id)
        )
    assert items == len(shop.orders[min(shop.orders)].line_items)


async def test_a_failed_bulk_operation_fails_the_run(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant, sandbox: SandboxServer
) -> None:
    channel = await _channel(database, tenant, sandbox, FAIL)
    forced = await _control(
        f"{sandbox.base_url}/_sandbox/shops/{FAIL}/bulk_operations/fail",
        json={"error_code": "ACCESS_DENIED"},
    )
    assert forced.status_code == 200
    run = await _start(queue_runtime, channel, SyncResource.IMPORT)
    handler = run_handler(queue_runtime.sessionmaker, sync_pullers(queue_runtime))

    with pytest.raises(PermanentJobError, match="FAILED with error code ACCESS_DENIED"):
        await handler(_job(run, attempt=1))

    async with database.sessionmaker() as session:
        failed = await session.get_one(SyncRun, run.id)
        assert failed.status == "FAILED"
        assert failed.error is not None
        assert "bulk operation gid://shopify/BulkOperation/" in failed.error
        assert "FAILED with error code ACCESS_DENIED" in failed.error
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_an_import_then_a_webhook_keeps_one_order(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant, sandbox: SandboxServer
) -> None:
    from rappit.app import create_app
    from tests.integrations.shopify.test_webhook_processing import process_pending
    from tests.support.shopify import post_webhook

    shop = sandbox.state.shops[FAIL]
    channel = await _channel(database, tenant, sandbox, FAIL)
    run = await _run(queue_runtime, channel, SyncResource.IMPORT)
    assert (run.status, run.counts["created"]) == ("COMPLETED", 20)
    newest = max(shop.orders.values(), key=lambda o: o.updated_at)
    payload = payloads.order_json(shop, newest)

    transport = httpx.ASGITransport(app=create_app(runtime=queue_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as client:
        response = await post_webhook(
            client, "orders/updated", payload, shop=FAIL, secret=shop.webhook_secret
        )
        assert response.json() == {"status": "enqueued"}
        await process_pending(database)
        started = await client.post(
            f"/api/v1/channels/{channel.id}/sync",
            json={"resource": "import"},
            headers=tenant.headers,
        )
    assert (started.status_code, started.json()["resource"]) == (202, "import")
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 20
        same = await session.scalar(
            select(func.count()).select_from(Order).where(Order.external_order_id == str(newest.id))
        )
    assert same == 1


def test_the_collector_is_set_for_imports_only_while_they_run() -> None:
    thresholds = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with bulk_import._collector_set_for_import():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (bulk_import.IMPORT_GC_YOUNG_THRESHOLD, *thresholds[1:])
        with pytest.raises(RuntimeError), bulk_import._collector_set_for_import():
            # A second import in the process, ending (here by failing) before the first.
            raise RuntimeError("import failed")
        assert gc.get_freeze_count() > 0  # still set for the first
        assert gc.get_threshold()[0] == bulk_import.IMPORT_GC_YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


async def test_a_reader_process_that_dies_fails_the_attempt_and_the_next_goes_on(
    queue_runtime: Runtime,
    database: TestDatabase,
    tenant: Tenant,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = sandbox.state.shops[CRASH]
    await _stock_skus(database, tenant, _codes(shop))
    channel = await _channel(database, tenant, sandbox, CRASH)
    _read(monkeypatch, "elsewhere")
    # Small pages: the reader is still at work (a few pages ahead at most) when it is killed.
    monkeypatch.setattr(bulk_reader, "PAGE_SIZE", 40)
    readers: list[Any] = []
    original_start = bulk_reader._ReaderProcess.__init__

    def remember(self: Any, *args: Any) -> None:
        original_start(self, *args)
        readers.append(self)

    monkeypatch.setattr(bulk_reader._ReaderProcess, "__init__", remember)
    original_apply = bulk_import.apply_orders
    pages = {"applied": 0}

    async def kill_the_reader_on_the_second_page(*args: Any) -> Any:
        pages["applied"] += 1
        if pages["applied"] == 2:
            readers[0].process.kill()
        return await original_apply(*args)

    monkeypatch.setattr(bulk_import, "apply_orders", kill_the_reader_on_the_second_page)
    run = await _start(queue_runtime, channel, SyncResource.IMPORT)
    handler = run_handler(queue_runtime.sessionmaker, sync_pullers(queue_runtime))
    with pytest.raises(bulk_reader.ReaderFailed, match=r"ended \(exit code -9\)"):
        await handler(_job(run, attempt=1))
    assert readers[0].process.returncode == -9
    async with database.sessionmaker() as session:
        halfway = await session.get_one(SyncRun, run.id)
        # What it had sent before it died was applied, each page with its cursor.
        assert halfway.status == "PENDING"
        assert 80 <= halfway.counts["created"] < 800
        assert halfway.cursor["lines"] > 0

    await handler(_job(run, attempt=2))
    async with database.sessionmaker() as session:
        done = await session.get_one(SyncRun, run.id)
        assert (done.status, done.counts["created"], done.total) == ("COMPLETED", 800, 800)
        assert await session.scalar(select(func.count()).select_from(Order)) == 800
    assert all(reader.process.returncode is not None for reader in readers)
