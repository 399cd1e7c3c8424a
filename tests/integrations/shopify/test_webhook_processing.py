"""Processing Shopify webhook events: orders and their reservations, staleness and
reordering, fulfilments, stock updates, uninstall and the privacy topics."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from rappit.kit.db import unit_of_work
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    Fulfillment,
    InventoryMovement,
    Order,
    OrderItem,
    Reservation,
    StockLevel,
    WebhookEvent,
    WebhookEventStatus,
)
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext, PermanentJobError
from rappit.webhooks.processing import process_event_handler
from rappit.wiring import webhook_topics
from tests.conftest import TestDatabase
from tests.integrations.shopify.conftest import ShopifyShop
from tests.integrations.shopify.payloads import (
    edited,
    line_item,
    order,
    set_current,
    set_fulfilled,
)
from tests.support.factories import assert_ledger_replays
from tests.support.shopify import post_webhook


async def process_pending(database: TestDatabase, *, attempt: int = 1) -> list[WebhookEvent]:
    """Run the worker's handler for every ENQUEUED event, oldest first, as the queue would."""
    handler = process_event_handler(database.sessionmaker, webhook_topics())
    async with database.sessionmaker() as session:
        pending = (
            await session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.status == WebhookEventStatus.ENQUEUED)
                .order_by(WebhookEvent.id)
            )
        ).all()
    for event in pending:
        await handler(
            JobContext(
                queue=QueueName.WEBHOOK_PROCESSING,
                name="webhooks.process",
                job_id=f"webhook-event.{event.id}",
                data={"organization_id": str(event.organization_id), "event_id": str(event.id)},
                attempt=attempt,
                max_attempts=3,
            )
        )
    async with database.sessionmaker() as session:
        return list((await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))).all())


async def send(
    client: httpx.AsyncClient, shop: ShopifyShop, topic: str, payload: dict[str, Any]
) -> None:
    response = await post_webhook(client, topic, payload, shop=shop.domain)
    assert response.json() == {"status": "enqueued"}, response.text


async def order_state(database: TestDatabase) -> tuple[str, list[tuple[str, int]], dict[str, int]]:
    """(status, active reservations per line, reserved per SKU code)."""
    async with database.sessionmaker() as session:
        the_order = (await session.scalars(select(Order))).one()
        rows = await session.execute(
            select(OrderItem.external_item_id, func.sum(Reservation.quantity))
            .join(Reservation, Reservation.order_item_id == OrderItem.id)
            .where(Reservation.released_at.is_(None), Reservation.consumed_at.is_(None))
            .group_by(OrderItem.external_item_id)
            .order_by(OrderItem.external_item_id)
        )
        reserved = {
            code: int(total or 0)
            for code, total in await session.execute(
                select(ChannelListing.external_variant_id, func.sum(StockLevel.reserved))
                .join(StockLevel, StockLevel.sku_id == ChannelListing.sku_id)
                .group_by(ChannelListing.external_variant_id)
            )
        }
        await assert_ledger_replays(session, the_order.organization_id)
        return the_order.status, [(r[0], int(r[1])) for r in rows], reserved


async def test_a_paid_order_is_reserved(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(webhook_client, shopify, "orders/create", order())
    [event] = await process_pending(database)

    assert (event.status, event.attempts, event.error) == ("COMPLETED", 1, None)
    assert event.resource_id == "5940139491234"
    assert event.processed_at is not None
    status, reservations, _ = await order_state(database)
    assert status == "RESERVED"
    assert reservations == [("11001", 2), ("11002", 1)]
    async with database.sessionmaker() as session:
        reservation_rows = (await session.scalars(select(Reservation))).all()
        assert sorted(r.quantity for r in reservation_rows) == [1, 2]
        assert all(r.released_at is None for r in reservation_rows)


async def test_the_same_delivery_twice_leaves_one_order(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    for _ in range(2):
        await post_webhook(
            webhook_client, "orders/create", order(), shop=shopify.domain, webhook_id="wh-1"
        )
    await process_pending(database)
    await send(webhook_client, shopify, "orders/updated", order())  # same content, new delivery
    events = await process_pending(database)
    assert [e.status for e in events] == ["COMPLETED", "COMPLETED"]
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
        assert await session.scalar(select(func.count()).select_from(Reservation)) == 2
    assert (await order_state(database))[1] == [("11001", 2), ("11002", 1)]


async def test_a_job_run_twice_for_one_event_does_nothing_more(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(webhook_client, shopify, "orders/create", order())
    [event] = await process_pending(database)
    handler = process_event_handler(database.sessionmaker, webhook_topics())
    context = JobContext(
        QueueName.WEBHOOK_PROCESSING,
        "webhooks.process",
        "x",
        {"organization_id": str(event.organization_id), "event_id": str(event.id)},
        2,
        3,
    )
    assert await handler(context) == {"status": "COMPLETED"}
    async with database.sessionmaker() as session:
        assert (await session.get_one(WebhookEvent, event.id)).attempts == 1


async def test_an_unpaid_order_reserves_once_paid_and_edits_reconcile(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    created = order(financial_status="pending", updated_at="2026-03-01T12:00:00Z")
    await send(webhook_client, shopify, "orders/create", created)
    await process_pending(database)
    assert (await order_state(database))[:2] == ("PENDING", [])

    paid = order(updated_at="2026-03-01T12:05:00Z")
    await send(webhook_client, shopify, "orders/updated", paid)
    await process_pending(database)
    assert (await order_state(database))[:2] == ("RESERVED", [("11001", 2), ("11002", 1)])

    # Order edit: one T-shirt fewer, the mug removed.
    await send(
        webhook_client,
        shopify,
        "orders/updated",
        edited(paid, updated_at="2026-03-01T12:10:00Z", **{"11001": 1, "11002": 0}),
    )
    await process_pending(database)
    status, reservations, _ = await order_state(database)
    assert (status, reservations) == ("RESERVED", [("11001", 1)])


async def test_updated_before_created_creates_the_order(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(webhook_client, shopify, "orders/updated", order())
    [event] = await process_pending(database)
    assert event.status == "COMPLETED"
    assert (await order_state(database))[0] == "RESERVED"


TIMES = {
    "orders/create": "2026-03-01T12:00:00Z",
    "orders/updated": "2026-03-01T12:05:00Z",
    "orders/cancelled": "2026-03-01T12:10:00Z",
}


def _version(topic: str) -> dict[str, Any]:
    payload = order(updated_at=TIMES[topic])
    if topic == "orders/updated":
        set_current(payload["line_items"][0], 3)
    if topic == "orders/cancelled":
        payload["cancelled_at"] = TIMES[topic]
        payload["cancel_reason"] = "customer"
    return payload


@pytest.mark.parametrize("sequence", list(itertools.permutations(TIMES)))
async def test_any_delivery_order_ends_in_the_newest_state(
    webhook_client: httpx.AsyncClient,
    shopify: ShopifyShop,
    database: TestDatabase,
    sequence: tuple[str, ...],
) -> None:
    for topic in sequence:
        await send(webhook_client, shopify, topic, _version(topic))
    events = await process_pending(database)

    status, reservations, reserved = await order_state(database)
    assert status == "CANCELLED"
    assert reservations == []
    assert reserved == {"44001": 0, "44002": 0}
    # Whatever came after the cancellation was older and skipped.
    position = sequence.index("orders/cancelled")
    assert [e.status for e in events][position + 1 :] == ["SKIPPED"] * (2 - position)
    assert all(e.error and e.error.startswith("stale") for e in events if e.status == "SKIPPED")


async def test_stale_update_after_a_newer_one_is_skipped(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(webhook_client, shopify, "orders/updated", _version("orders/updated"))
    await send(webhook_client, shopify, "orders/create", _version("orders/create"))
    events = await process_pending(database)
    assert [e.status for e in events] == ["COMPLETED", "SKIPPED"]
    assert (await order_state(database))[1] == [("11001", 3), ("11002", 1)]


async def test_realistic_payloads(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    payload = order(
        customer=False,
        currency="EUR",
        presentment_currency="USD",
        test=True,
        lines=[
            line_item(1, sku="TSHIRT-M", quantity=1, variant_id=44_001, product_id=8_001),
            line_item(2, sku=None, quantity=1, title="Gift wrapping"),
        ],
    )
    payload["line_items"][1]["requires_shipping"] = False
    await send(webhook_client, shopify, "orders/create", payload)
    [event] = await process_pending(database)
    assert event.status == "COMPLETED"
    async with database.sessionmaker() as session:
        the_order = (await session.scalars(select(Order))).one()
        # A custom line with no SKU cannot be mapped: a person has to look at it.
        assert the_order.status == "NEEDS_ATTENTION"
        assert (the_order.customer, the_order.is_test, the_order.currency) == (None, True, "EUR")
        assert the_order.details["presentment_currency"] == "USD"
        items = (
            await session.scalars(select(OrderItem).order_by(OrderItem.external_item_id))
        ).all()
        assert [(i.external_item_id, i.sku_id is not None, i.requires_shipping) for i in items] == [
            ("1", True, True),
            ("2", False, False),
        ]


async def test_a_broken_payload_fails_at_once(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    payload = order()
    payload["updated_at"] = "not a time"
    await send(webhook_client, shopify, "orders/create", payload)
    with pytest.raises(PermanentJobError, match="not an ISO 8601 time"):
        await process_pending(database)
    async with database.sessionmaker() as session:
        event = (await session.scalars(select(WebhookEvent))).one()
    assert (event.status, event.attempts) == ("FAILED", 1)
    assert event.error == "ShopifyPayloadError: updated_at is not an ISO 8601 time: 'not a time'"


def _fulfillment(fulfillment_id: int, lines: list[tuple[int, int]], **extra: Any) -> dict[str, Any]:
    return {
        "id": fulfillment_id,
        "order_id": 5_940_139_491_234,
        "status": "success",
        "tracking_company": "DHL Express",
        "tracking_number": "1234567890",
        "tracking_numbers": ["1234567890"],
        "tracking_url": "https://www.dhl.com/track?AWB=1234567890",
        "line_items": [{"id": line_id, "quantity": quantity} for line_id, quantity in lines],
        "created_at": "2026-03-02T10:00:00Z",
        "updated_at": "2026-03-02T10:00:00Z",
        **extra,
    }


async def test_fulfilments_consume_stock_once(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(webhook_client, shopify, "orders/create", order())
    await process_pending(database)

    await send(webhook_client, shopify, "fulfillments/create", _fulfillment(900, [(11001, 1)]))
    await send(webhook_client, shopify, "fulfillments/create", _fulfillment(900, [(11001, 1)]))
    await send(
        webhook_client,
        shopify,
        "fulfillments/update",
        _fulfillment(900, [(11001, 1)], tracking_number="NEW-1", tracking_numbers=["NEW-1"]),
    )
    events = await process_pending(database)
    assert [e.status for e in events] == ["COMPLETED"] * 4

    status, reservations, reserved = await order_state(database)
    assert (status, reservations) == ("PARTIALLY_FULFILLED", [("11001", 1), ("11002", 1)])
    assert reserved == {"44001": 1, "44002": 1}
    async with database.sessionmaker() as session:
        stock_rows = (await session.scalars(select(StockLevel).order_by(StockLevel.on_hand))).all()
        assert sorted((s.on_hand, s.reserved) for s in stock_rows) == [(9, 1), (10, 1)]
        fulfillment = (await session.scalars(select(Fulfillment))).one()
        assert (fulfillment.external_fulfillment_id, fulfillment.tracking_number) == (
            "900",
            "NEW-1",
        )

    await send(
        webhook_client, shopify, "fulfillments/create", _fulfillment(901, [(11001, 1), (11002, 1)])
    )
    await process_pending(database)
    assert (await order_state(database))[:2] == ("FULFILLED", [])


async def test_a_fulfilment_before_its_order_is_retried(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(webhook_client, shopify, "fulfillments/create", _fulfillment(900, [(11001, 1)]))
    with pytest.raises(Exception, match="order 5940139491234 is not known yet"):
        await process_pending(database)
    async with database.sessionmaker() as session:
        event = (await session.scalars(select(WebhookEvent))).one()
    # Not the last attempt: it waits for the next one.
    assert (event.status, event.attempts) == ("ENQUEUED", 1)


def _shipped_in_shopify(updated_at: str, **fulfilled: int) -> dict[str, Any]:
    """The paid order as ``orders/updated`` shows it after a fulfilment made in Shopify:
    ``fulfilled`` units per line id (as str) are no longer fulfillable."""
    payload = order(updated_at=updated_at)
    payload["fulfillment_status"] = "partial"
    for line in payload["line_items"]:
        if str(line["id"]) in fulfilled:
            set_fulfilled(line, fulfilled[str(line["id"])])
    return payload


async def _stock_and_ledger(database: TestDatabase) -> dict[str, tuple[int, int, int]]:
    """Per variant id: (on hand, reserved, the ledger's on-hand total)."""
    async with database.sessionmaker() as session:
        ledger = dict(
            (
                await session.execute(
                    select(
                        InventoryMovement.sku_id, func.sum(InventoryMovement.on_hand_delta)
                    ).group_by(InventoryMovement.sku_id)
                )
            ).all()
        )
        rows = await session.execute(
            select(
                ChannelListing.external_variant_id,
                StockLevel.sku_id,
                StockLevel.on_hand,
                StockLevel.reserved,
            ).join(StockLevel, StockLevel.sku_id == ChannelListing.sku_id)
        )
        return {
            str(variant): (on_hand, reserved, int(ledger[sku_id]))
            for variant, sku_id, on_hand, reserved in rows
        }


@pytest.mark.parametrize("first", ["orders/updated", "fulfillments/create"])
async def test_a_shipment_made_in_shopify_lowers_on_hand_once_in_either_order(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase, first: str
) -> None:
    """Shopify sends ``orders/updated`` (the line no longer fulfillable) and
    ``fulfillments/create`` for one shipment, in no promised order. The update keeps the hold
    of the shipped units; the fulfilment consumes it. Either way the two units leave on hand
    once."""
    await send(webhook_client, shopify, "orders/create", order())
    await process_pending(database)
    assert await _stock_and_ledger(database) == {"44001": (10, 2, 10), "44002": (10, 1, 10)}

    deliveries = {
        "orders/updated": _shipped_in_shopify("2026-03-02T10:00:01Z", **{"11001": 2}),
        "fulfillments/create": _fulfillment(900, [(11001, 2)]),
    }
    second = next(topic for topic in deliveries if topic != first)
    await send(webhook_client, shopify, first, deliveries[first])
    await process_pending(database)
    after_first = await _stock_and_ledger(database)
    await send(webhook_client, shopify, second, deliveries[second])
    events = await process_pending(database)

    assert [e.status for e in events] == ["COMPLETED"] * 3
    if first == "orders/updated":
        assert after_first == {"44001": (10, 2, 10), "44002": (10, 1, 10)}  # still held
    else:
        assert after_first == {"44001": (8, 0, 8), "44002": (10, 1, 10)}  # consumed
    status, reservations, _ = await order_state(database)
    assert (status, reservations) == ("PARTIALLY_FULFILLED", [("11002", 1)])
    assert await _stock_and_ledger(database) == {"44001": (8, 0, 8), "44002": (10, 1, 10)}
    async with database.sessionmaker() as session:
        items = (
            await session.execute(
                select(
                    OrderItem.external_item_id,
                    OrderItem.fulfilled_quantity,
                    OrderItem.channel_fulfilled_quantity,
                ).order_by(OrderItem.external_item_id)
            )
        ).all()
    assert [tuple(row) for row in items] == [("11001", 2, 2), ("11002", 0, 0)]

    # A late copy of the order from before the shipment is stale and takes nothing back.
    await send(webhook_client, shopify, "orders/updated", order(updated_at="2026-03-02T09:00:00Z"))
    [*_, late] = await process_pending(database)
    assert late.status == "SKIPPED"
    assert await _stock_and_ledger(database) == {"44001": (8, 0, 8), "44002": (10, 1, 10)}


async def test_units_shipped_in_shopify_cannot_be_sold_again_before_their_fulfilment(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    """Between ``orders/updated`` (shipped) and ``fulfillments/create`` another order wants
    every unit of the SKU. It gets only the free ones: the shipped units are still held, so the
    fulfilment finds them and on hand drops by exactly the units that left."""
    await send(webhook_client, shopify, "orders/create", order())
    await process_pending(database)
    await send(
        webhook_client,
        shopify,
        "orders/updated",
        _shipped_in_shopify("2026-03-02T10:00:01Z", **{"11001": 2}),
    )
    await process_pending(database)
    greedy = order(
        5_940_139_499_999,
        lines=[line_item(12_001, sku="TSHIRT-M", quantity=10, variant_id=44_001, product_id=8_001)],
    )
    await send(webhook_client, shopify, "orders/create", greedy)
    await process_pending(database)
    assert (await _stock_and_ledger(database))["44001"] == (10, 10, 10)  # 2 kept + 8 free

    await send(webhook_client, shopify, "fulfillments/create", _fulfillment(900, [(11001, 2)]))
    events = await process_pending(database)

    assert [e.status for e in events] == ["COMPLETED"] * 4
    assert await _stock_and_ledger(database) == {"44001": (8, 8, 8), "44002": (10, 1, 10)}
    async with database.sessionmaker() as session:
        held = dict(
            (
                await session.execute(
                    select(Order.external_order_id, func.sum(Reservation.quantity))
                    .join(OrderItem, OrderItem.order_id == Order.id)
                    .join(Reservation, Reservation.order_item_id == OrderItem.id)
                    .where(Reservation.released_at.is_(None), Reservation.consumed_at.is_(None))
                    .group_by(Order.external_order_id)
                )
            ).all()
        )
        await assert_ledger_replays(session, shopify.channel.organization_id)
    assert held == {"5940139491234": 1, "5940139499999": 8}


async def test_an_order_fully_shipped_in_shopify_holds_nothing(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    payload = _shipped_in_shopify("2026-03-01T12:00:00Z", **{"11001": 2, "11002": 1})
    payload["fulfillment_status"] = "fulfilled"
    await send(webhook_client, shopify, "orders/create", payload)
    [event] = await process_pending(database)

    assert event.status == "COMPLETED"
    status, reservations, reserved = await order_state(database)
    assert (status, reservations, reserved) == ("FULFILLED", [], {"44001": 0, "44002": 0})
    assert await _stock_and_ledger(database) == {"44001": (10, 0, 10), "44002": (10, 0, 10)}


async def test_shopifys_echo_of_a_fulfilment_made_in_rappit_changes_nothing(
    api_for_shop: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(api_for_shop, shopify, "orders/create", order())
    await process_pending(database)
    async with database.sessionmaker() as session:
        the_order = (await session.scalars(select(Order))).one()
        tshirt = (
            await session.scalars(select(OrderItem).where(OrderItem.external_item_id == "11001"))
        ).one()
    made = await api_for_shop.post(
        f"/api/v1/orders/{the_order.id}/fulfillments",
        json={"items": [{"order_item_id": str(tshirt.id), "quantity": 1}]},
    )
    assert made.status_code == 201, made.text
    assert await _stock_and_ledger(database) == {"44001": (9, 1, 9), "44002": (10, 1, 10)}

    # Shopify, having created it, reports the unit fulfilled on its next version of the order.
    await send(
        api_for_shop,
        shopify,
        "orders/updated",
        _shipped_in_shopify("2026-03-02T10:00:01Z", **{"11001": 1}),
    )
    [*_, echo] = await process_pending(database)
    assert echo.status == "COMPLETED"
    status, reservations, _ = await order_state(database)
    assert (status, reservations) == ("PARTIALLY_FULFILLED", [("11001", 1), ("11002", 1)])
    assert await _stock_and_ledger(database) == {"44001": (9, 1, 9), "44002": (10, 1, 10)}


async def _map_location(database: TestDatabase, shopify: ShopifyShop, master: str) -> None:
    from rappit.models import Sku, Warehouse

    async with unit_of_work(database.sessionmaker) as session:
        warehouse = (await session.scalars(select(Warehouse))).one()
        sku = (await session.scalars(select(Sku).where(Sku.code == "MUG"))).one()
        org = shopify.channel.organization_id
        session.add(
            ChannelLocation(
                organization_id=org,
                channel_id=shopify.channel.id,
                external_location_id="655441491",
                warehouse_id=warehouse.id,
                stock_master=master,
            )
        )
        session.add(
            ChannelListing(
                organization_id=org,
                channel_id=shopify.channel.id,
                sku_id=sku.id,
                external_variant_id="44002",
                external_inventory_item_id="39072856",
            )
        )


@pytest.mark.parametrize(("master", "expected_on_hand"), [("channel", 8), ("rappit", 10)])
async def test_inventory_level_updates_apply_only_where_the_channel_is_master(
    webhook_client: httpx.AsyncClient,
    shopify: ShopifyShop,
    database: TestDatabase,
    master: str,
    expected_on_hand: int,
) -> None:
    await _map_location(database, shopify, master)
    await send(webhook_client, shopify, "orders/create", order())  # holds one mug
    await send(
        webhook_client,
        shopify,
        "inventory_levels/update",
        {
            "inventory_item_id": 39_072_856,
            "location_id": 655_441_491,
            "available": 7,
            "updated_at": "2026-03-01T12:30:00+01:00",
        },
    )
    events = await process_pending(database)
    assert [e.status for e in events] == ["COMPLETED", "COMPLETED"]
    async with database.sessionmaker() as session:
        from rappit.models import Sku

        mug = (await session.scalars(select(Sku).where(Sku.code == "MUG"))).one()
        level = (await session.scalars(select(StockLevel).where(StockLevel.sku_id == mug.id))).one()
        # Channel master: 7 free in Shopify + 1 held by Rappit = 8 on hand.
        assert (level.on_hand, level.reserved) == (expected_on_hand, 1)
        await assert_ledger_replays(session, shopify.channel.organization_id)


async def test_uninstall_disconnects_and_later_orders_are_skipped(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(webhook_client, shopify, "app/uninstalled", {"id": 1, "domain": shopify.domain})
    await process_pending(database)
    await send(webhook_client, shopify, "orders/create", order())
    events = await process_pending(database)
    assert [(e.status, e.error) for e in events] == [
        ("COMPLETED", "channel disconnected; its data is kept"),
        ("SKIPPED", "channel is disconnected"),
    ]
    async with database.sessionmaker() as session:
        assert (await session.get_one(Channel, shopify.channel.id)).status == "disconnected"
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_customer_redact_erases_personal_data_and_keeps_the_rest(
    webhook_client: httpx.AsyncClient,
    shopify: ShopifyShop,
    database: TestDatabase,
    api_for_shop: httpx.AsyncClient,
) -> None:
    await send(webhook_client, shopify, "orders/create", order())
    await send(webhook_client, shopify, "orders/create", order(order_id=42, customer=False))
    await process_pending(database)

    export = await api_for_shop.get(f"/api/v1/channels/{shopify.channel.id}/customers/7001/data")
    assert export.status_code == 200
    [exported] = export.json()["orders"]
    assert exported["customer"]["email"] == "ada@example.com"
    assert exported["shipping_address"]["city"] == "Berlin"

    await send(
        webhook_client,
        shopify,
        "customers/redact",
        {
            "shop_id": 1,
            "shop_domain": shopify.domain,
            "customer": {"id": 7001, "email": "ada@example.com", "phone": None},
            "orders_to_redact": [5_940_139_491_234],
        },
    )
    events = await process_pending(database)
    assert events[-1].error == "customer data erased from 1 order(s)"
    async with database.sessionmaker() as session:
        redacted = (
            await session.scalars(select(Order).where(Order.external_order_id == "5940139491234"))
        ).one()
        assert (redacted.customer, redacted.shipping_address, redacted.billing_address) == (
            None,
            None,
            None,
        )
        assert "email" not in redacted.details
        assert redacted.status == "RESERVED"  # the order and its stock stay
        stored = (
            await session.scalars(
                select(WebhookEvent.payload).where(WebhookEvent.resource_id == "5940139491234")
            )
        ).all()
        assert stored == [{"redacted": True}]
        other = (await session.scalars(select(Order).where(Order.external_order_id == "42"))).one()
        assert other.shipping_address is not None
    empty = await api_for_shop.get(f"/api/v1/channels/{shopify.channel.id}/customers/7001/data")
    assert empty.json()["orders"] == []


async def test_shop_redact_erases_every_customer(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(webhook_client, shopify, "orders/create", order())
    await send(webhook_client, shopify, "orders/create", order(order_id=42))
    await send(
        webhook_client, shopify, "shop/redact", {"shop_id": 1, "shop_domain": shopify.domain}
    )
    events = await process_pending(database)
    assert events[-1].error == "customer data erased from 2 order(s)"
    async with database.sessionmaker() as session:
        orders = (await session.scalars(select(Order))).all()
        assert [o.shipping_address for o in orders] == [None, None]
        payloads = (
            await session.scalars(
                select(WebhookEvent.payload).where(WebhookEvent.topic == "orders/create")
            )
        ).all()
        assert payloads == [{"redacted": True}, {"redacted": True}]


async def test_data_request_is_recorded(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    await send(
        webhook_client,
        shopify,
        "customers/data_request",
        {
            "shop_id": 1,
            "shop_domain": shopify.domain,
            "orders_requested": [5_940_139_491_234],
            "customer": {"id": 7001, "email": "ada@example.com"},
            "data_request": {"id": 9999},
        },
    )
    [event] = await process_pending(database)
    assert event.status == "COMPLETED"
    assert event.error == (
        f"recorded; export with GET /api/v1/channels/{shopify.channel.id}/customers/7001/data"
    )
    assert event.payload["data_request"] == {"id": 9999}


async def test_replay_of_a_failed_event(
    webhook_client: httpx.AsyncClient,
    shopify: ShopifyShop,
    database: TestDatabase,
    api_for_shop: httpx.AsyncClient,
) -> None:
    await send(webhook_client, shopify, "fulfillments/create", _fulfillment(900, [(11001, 1)]))
    with pytest.raises(Exception, match="not known yet"):
        await process_pending(database, attempt=3)  # the last attempt
    [failed] = await process_pending(database)
    assert failed.status == "FAILED"

    await send(webhook_client, shopify, "orders/create", order())  # the missing order arrives
    await process_pending(database)
    replayed = await api_for_shop.post(f"/api/v1/webhook-events/{failed.id}/replay")
    assert replayed.status_code == 202
    assert (replayed.json()["status"], replayed.json()["error"]) == ("ENQUEUED", None)
    events = await process_pending(database)
    assert [e.status for e in events] == ["COMPLETED", "COMPLETED"]
    assert (await order_state(database))[0] == "PARTIALLY_FULFILLED"

    missing = await api_for_shop.post(f"/api/v1/webhook-events/{uuid.uuid4()}/replay")
    assert missing.status_code == 404
