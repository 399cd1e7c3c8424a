"""The orders service on both databases: upsert idempotency, staleness, reservation
reconciliation, SKU resolution, allocation and backorders."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from rappit.fulfillments.service import FulfillmentLine, FulfillmentService
from rappit.kit.db import unit_of_work
from rappit.models import (
    Channel,
    ChannelListing,
    InventoryMovement,
    Order,
    OrderItem,
    OrderStatus,
    PaymentStatus,
    Reservation,
    Sku,
    Warehouse,
)
from rappit.orders.inputs import ChannelOrder, ChannelOrderLine
from rappit.orders.service import OrderService, UpsertOutcome, UpsertResult
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import (
    assert_ledger_replays,
    channel_order,
    levels,
    line,
    make_channel,
    make_listing,
    make_sku,
    make_warehouse,
    map_location,
    stock,
)


@dataclass
class Shop:
    db: TestDatabase
    org: uuid.UUID
    channel: Channel
    warehouse: Warehouse
    sku: Sku

    async def apply(self, data: ChannelOrder) -> UpsertResult:
        async with unit_of_work(self.db.sessionmaker) as session:
            channel = await session.get_one(Channel, self.channel.id)
            return await OrderService(session, self.org).create_or_update_from_channel(
                channel, data
            )

    async def order(self, external_id: str) -> Order:
        async with self.db.sessionmaker() as session:
            return (
                await session.scalars(select(Order).where(Order.external_order_id == external_id))
            ).one()

    async def active_reserved(self, external_id: str) -> list[tuple[str, str, int]]:
        """(line id, warehouse code, quantity) of the order's active reservations."""
        async with self.db.sessionmaker() as session:
            rows = await session.execute(
                select(OrderItem.external_item_id, Warehouse.code, Reservation.quantity)
                .join(OrderItem, OrderItem.id == Reservation.order_item_id)
                .join(Order, Order.id == OrderItem.order_id)
                .join(Warehouse, Warehouse.id == Reservation.warehouse_id)
                .where(
                    Order.external_order_id == external_id,
                    Reservation.released_at.is_(None),
                    Reservation.consumed_at.is_(None),
                )
                .order_by(OrderItem.external_item_id, Warehouse.code)
            )
            return [(r[0], r[1], r[2]) for r in rows]

    async def level(
        self, sku: Sku | None = None, warehouse: Warehouse | None = None
    ) -> tuple[int, int]:
        async with self.db.sessionmaker() as session:
            current = await levels(session, self.org)
        sku, warehouse = sku or self.sku, warehouse or self.warehouse
        return current.get((sku.id, warehouse.id), (0, 0))

    async def check_ledger(self) -> None:
        async with self.db.sessionmaker() as session:
            await assert_ledger_replays(session, self.org)

    async def count(self, model: type[Order] | type[OrderItem] | type[Reservation]) -> int:
        async with self.db.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def shop(database: TestDatabase, tenant: Tenant) -> Shop:
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id)
        warehouse = await make_warehouse(session, tenant.organization_id, "MAIN")
        sku = await make_sku(session, tenant.organization_id, "TSHIRT-M")
        await stock(session, tenant.organization_id, sku, warehouse, 10)
    return Shop(database, tenant.organization_id, channel, warehouse, sku)


async def test_paid_order_reserves_its_units(shop: Shop) -> None:
    result = await shop.apply(channel_order("1001", [line("L1", 2, sku="TSHIRT-M")]))

    assert result.outcome == UpsertOutcome.CREATED
    assert result.shortfalls == []
    order = await shop.order("1001")
    assert order.status == OrderStatus.RESERVED
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 2)]
    assert await shop.level() == (10, 2)
    await shop.check_ledger()


async def test_unpaid_order_holds_nothing_until_paid(shop: Shop) -> None:
    await shop.apply(
        channel_order("1001", [line("L1", 2, sku="TSHIRT-M")], payment=PaymentStatus.PENDING)
    )
    assert (await shop.order("1001")).status == OrderStatus.PENDING
    assert await shop.active_reserved("1001") == []

    result = await shop.apply(channel_order("1001", [line("L1", 2, sku="TSHIRT-M")], minutes=5))
    assert result.outcome == UpsertOutcome.UPDATED
    assert (await shop.order("1001")).status == OrderStatus.RESERVED
    assert await shop.level() == (10, 2)


async def test_authorized_reserves_only_when_the_channel_says_so(
    shop: Shop, database: TestDatabase
) -> None:
    data = channel_order("1001", [line("L1", 1, sku="TSHIRT-M")], payment=PaymentStatus.AUTHORIZED)
    await shop.apply(data)
    assert (await shop.order("1001")).status == OrderStatus.PENDING

    async with unit_of_work(database.sessionmaker) as session:
        channel = await session.get_one(Channel, shop.channel.id)
        channel.settings = {"reserve_on_authorized": True}
    await shop.apply(data)
    assert (await shop.order("1001")).status == OrderStatus.RESERVED
    assert await shop.level() == (10, 1)


async def test_same_order_twice_is_one_order_and_one_set_of_reservations(shop: Shop) -> None:
    data = channel_order("1001", [line("L1", 3, sku="TSHIRT-M")])
    first = await shop.apply(data)
    second = await shop.apply(data)

    assert (first.outcome, second.outcome) == (UpsertOutcome.CREATED, UpsertOutcome.UPDATED)
    assert await shop.count(Order) == 1
    assert await shop.count(OrderItem) == 1
    assert await shop.count(Reservation) == 1
    assert await shop.level() == (10, 3)
    await shop.check_ledger()


async def test_same_order_applied_concurrently_is_one_order(shop: Shop) -> None:
    data = channel_order("1001", [line("L1", 3, sku="TSHIRT-M")])
    results = await asyncio.gather(*(shop.apply(data) for _ in range(12)))

    outcomes = sorted(r.outcome for r in results)
    assert outcomes.count(UpsertOutcome.CREATED) == 1
    assert outcomes.count(UpsertOutcome.UPDATED) == 11
    assert await shop.count(Order) == 1
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 3)]
    assert await shop.level() == (10, 3)
    await shop.check_ledger()


async def test_stale_update_after_a_newer_one_changes_nothing(shop: Shop) -> None:
    await shop.apply(
        channel_order("1001", [line("L1", 2, sku="TSHIRT-M")], minutes=10, cancelled=True)
    )
    stale = await shop.apply(channel_order("1001", [line("L1", 5, sku="TSHIRT-M")], minutes=1))

    assert stale.outcome == UpsertOutcome.STALE
    order = await shop.order("1001")
    assert order.status == OrderStatus.CANCELLED
    assert await shop.active_reserved("1001") == []
    assert await shop.level() == (10, 0)
    async with shop.db.sessionmaker() as session:
        quantities = (await session.scalars(select(OrderItem.quantity))).all()
    assert quantities == [2]


async def test_cancel_releases_everything(shop: Shop) -> None:
    await shop.apply(channel_order("1001", [line("L1", 4, sku="TSHIRT-M")]))
    await shop.apply(
        channel_order("1001", [line("L1", 4, sku="TSHIRT-M")], minutes=1, cancelled=True)
    )

    assert (await shop.order("1001")).status == OrderStatus.CANCELLED
    assert await shop.active_reserved("1001") == []
    assert await shop.level() == (10, 0)
    await shop.check_ledger()


async def test_refund_releases_stock(shop: Shop) -> None:
    await shop.apply(channel_order("1001", [line("L1", 4, sku="TSHIRT-M")]))
    await shop.apply(
        channel_order(
            "1001", [line("L1", 4, sku="TSHIRT-M")], minutes=1, payment=PaymentStatus.REFUNDED
        )
    )
    assert (await shop.order("1001")).status == OrderStatus.PENDING
    assert await shop.level() == (10, 0)


async def test_edits_release_and_reserve_the_difference(shop: Shop, database: TestDatabase) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        await make_sku(session, shop.org, "MUG")
        mug = (await session.scalars(select(Sku).where(Sku.code == "MUG"))).one()
        await stock(session, shop.org, mug, shop.warehouse, 5)

    await shop.apply(
        channel_order("1001", [line("L1", 4, sku="TSHIRT-M"), line("L2", 1, sku="MUG")])
    )
    # Lower L1 from 4 to 1, raise L2 from 1 to 3.
    await shop.apply(
        channel_order("1001", [line("L1", 1, sku="TSHIRT-M"), line("L2", 3, sku="MUG")], minutes=1)
    )
    assert await shop.active_reserved("1001") == [
        ("L1", "MAIN", 1),
        ("L2", "MAIN", 1),
        ("L2", "MAIN", 2),
    ]
    assert await shop.level() == (10, 1)
    assert await shop.level(mug) == (5, 3)

    # L2 removed from the order altogether.
    await shop.apply(channel_order("1001", [line("L1", 1, sku="TSHIRT-M")], minutes=2))
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 1)]
    assert await shop.level(mug) == (5, 0)
    assert (await shop.order("1001")).status == OrderStatus.RESERVED
    await shop.check_ledger()


async def test_short_stock_reserves_what_is_there_and_lists_every_short_line(
    shop: Shop, database: TestDatabase
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        await make_sku(session, shop.org, "MUG")

    result = await shop.apply(
        channel_order("1001", [line("L1", 12, sku="TSHIRT-M"), line("L2", 2, sku="MUG")])
    )

    assert (await shop.order("1001")).status == OrderStatus.PARTIALLY_RESERVED
    assert sorted((s.external_item_id, s.requested, s.reserved) for s in result.shortfalls) == [
        ("L1", 12, 10),
        ("L2", 2, 0),
    ]
    assert await shop.level() == (10, 10)


async def test_no_stock_at_all_is_backordered_until_stock_arrives(
    shop: Shop, database: TestDatabase
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        await make_sku(session, shop.org, "MUG")
    await shop.apply(channel_order("1001", [line("L1", 2, sku="MUG")]))
    await shop.apply(channel_order("1002", [line("L1", 2, sku="MUG")], minutes=1))
    assert (await shop.order("1001")).status == OrderStatus.BACKORDERED

    async with unit_of_work(database.sessionmaker) as session:
        mug = (await session.scalars(select(Sku).where(Sku.code == "MUG"))).one()
        await stock(session, shop.org, mug, shop.warehouse, 3)
        assert await OrderService(session, shop.org).allocate_backorders([mug.id]) == 2

    # First come, first served: the older order is complete, the newer one gets the rest.
    assert (await shop.order("1001")).status == OrderStatus.RESERVED
    assert (await shop.order("1002")).status == OrderStatus.PARTIALLY_RESERVED
    assert await shop.level(mug) == (3, 3)
    await shop.check_ledger()


async def test_unmapped_line_needs_attention_until_the_sku_exists(
    shop: Shop, database: TestDatabase
) -> None:
    await shop.apply(
        channel_order(
            "1001", [line("L1", 1, sku="TSHIRT-M"), line("L2", 2, sku="NEW-1", variant="777")]
        )
    )
    assert (await shop.order("1001")).status == OrderStatus.NEEDS_ATTENTION
    # The mapped line is held anyway: that stock is owed to this customer.
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 1)]

    async with unit_of_work(database.sessionmaker) as session:
        new_sku = await make_sku(session, shop.org, "NEW-1")
        await stock(session, shop.org, new_sku, shop.warehouse, 5)
    async with unit_of_work(database.sessionmaker) as session:
        assert await OrderService(session, shop.org).resolve_unmapped_lines() == 1

    assert (await shop.order("1001")).status == OrderStatus.RESERVED
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 1), ("L2", "MAIN", 2)]
    async with database.sessionmaker() as session:
        listing = (await session.scalars(select(ChannelListing))).one()
    assert (listing.external_variant_id, listing.sku_id) == ("777", new_sku.id)


async def test_custom_line_without_sku_or_variant_needs_attention(shop: Shop) -> None:
    await shop.apply(channel_order("1001", [line("L1", 1, sku=None), line("L2", 1, sku="  ")]))
    assert (await shop.order("1001")).status == OrderStatus.NEEDS_ATTENTION


async def test_variant_listing_wins_over_the_sku_code(shop: Shop, database: TestDatabase) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        other = await make_sku(session, shop.org, "OTHER")
        await stock(session, shop.org, other, shop.warehouse, 5)
        channel = await session.get_one(Channel, shop.channel.id)
        await make_listing(session, shop.org, channel, other, "555")

    await shop.apply(channel_order("1001", [line("L1", 1, sku="TSHIRT-M", variant="555")]))
    assert await shop.level(other) == (5, 1)
    assert await shop.level() == (10, 0)


async def test_sku_code_match_records_a_listing_for_next_time(
    shop: Shop, database: TestDatabase
) -> None:
    await shop.apply(channel_order("1001", [line("L1", 1, sku="TSHIRT-M", variant="999")]))
    async with database.sessionmaker() as session:
        listing = (await session.scalars(select(ChannelListing))).one()
    assert (listing.external_variant_id, listing.sku_id) == ("999", shop.sku.id)


async def test_allocation_prefers_the_mapped_location_then_priority_then_most_available(
    shop: Shop, database: TestDatabase
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        sku = await make_sku(session, shop.org, "LAMP")
        near = await make_warehouse(session, shop.org, "NEAR", priority=50)
        far = await make_warehouse(session, shop.org, "FAR", priority=200)
        big = await make_warehouse(session, shop.org, "BIG", priority=50)
        await stock(session, shop.org, sku, near, 2)
        await stock(session, shop.org, sku, far, 10)
        await stock(session, shop.org, sku, big, 6)
        channel = await session.get_one(Channel, shop.channel.id)
        await map_location(session, shop.org, channel, "loc-far", far)

    # Mapped location first, even though its priority is worst.
    await shop.apply(channel_order("A", [line("L1", 3, sku="LAMP")], location="loc-far"))
    assert await shop.active_reserved("A") == [("L1", "FAR", 3)]
    # No location: priority 50 ties, BIG has more available.
    await shop.apply(channel_order("B", [line("L1", 3, sku="LAMP")]))
    assert await shop.active_reserved("B") == [("L1", "BIG", 3)]
    # 9 units: no warehouse has them all (NEAR 2, BIG 3, FAR 7), so split in preference order.
    await shop.apply(channel_order("C", [line("L1", 9, sku="LAMP")]))
    assert await shop.active_reserved("C") == [
        ("L1", "BIG", 3),
        ("L1", "FAR", 4),
        ("L1", "NEAR", 2),
    ]
    await shop.check_ledger()


async def test_orders_of_another_organisation_are_separate(
    shop: Shop, database: TestDatabase, other_tenant: Tenant
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        other_channel = await make_channel(session, other_tenant.organization_id)
        await make_sku(session, other_tenant.organization_id, "TSHIRT-M")
    await shop.apply(channel_order("1001", [line("L1", 1, sku="TSHIRT-M")]))
    async with unit_of_work(database.sessionmaker) as session:
        channel = await session.get_one(Channel, other_channel.id)
        with pytest.raises(ValueError, match="another organisation"):
            await OrderService(session, shop.org).create_or_update_from_channel(
                channel, channel_order("1001", [])
            )


async def test_creating_the_sku_through_the_api_resolves_waiting_orders(
    shop: Shop, database: TestDatabase, tenant: Tenant
) -> None:
    import httpx

    from rappit.app import create_app
    from rappit.config import Environment, Settings
    from rappit.kit.crypto import SecretBox
    from rappit.runtime import Runtime
    from tests.support.factories import TEST_SECRET_KEY

    await shop.apply(channel_order("1001", [line("L1", 2, sku="NEW-1", variant="777")]))
    await shop.apply(channel_order("1002", [line("L1", 1, variant="888")], minutes=1))
    assert (await shop.order("1001")).status == OrderStatus.NEEDS_ATTENTION

    runtime = Runtime(
        settings=Settings(env=Environment.TEST, database_url=database.url),
        engine=database.engine,
        sessionmaker=database.sessionmaker,
        secret_box=SecretBox(TEST_SECRET_KEY),
    )
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://rappit.test", headers=tenant.headers
    ) as api:
        created = await api.post(
            "/api/v1/products", json={"title": "New", "skus": [{"code": "NEW-1"}]}
        )
        assert created.status_code == 201
        # Mapped now, but there is no stock of it yet.
        assert (await shop.order("1001")).status == OrderStatus.BACKORDERED
        listing = await api.post(
            f"/api/v1/channels/{shop.channel.id}/listings",
            json={"sku": "TSHIRT-M", "external_variant_id": "888"},
        )
        assert listing.status_code == 201
        assert (await shop.order("1002")).status == OrderStatus.RESERVED
        adjusted = await api.post(
            "/api/v1/inventory/adjustments",
            json={"sku": "NEW-1", "warehouse": "MAIN", "delta": 5, "reason": "delivery"},
        )
        assert adjusted.status_code == 201
    assert (await shop.order("1001")).status == OrderStatus.RESERVED
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 2)]
    await shop.check_ledger()


# --- lines the channel already fulfilled -------------------------------------------------------


def shipped(data: ChannelOrderLine, units: int) -> ChannelOrderLine:
    """The line as the channel reports it with ``units`` of it already fulfilled."""
    return data.model_copy(update={"channel_fulfilled_quantity": units})


async def _ledger_totals(shop: Shop) -> tuple[int, int, int]:
    """(rows, sum of on_hand deltas, sum of reserved deltas) of the organisation's ledger."""
    async with shop.db.sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(InventoryMovement.on_hand_delta), 0),
                    func.coalesce(func.sum(InventoryMovement.reserved_delta), 0),
                ).where(InventoryMovement.organization_id == shop.org)
            )
        ).one()
    return int(rows[0]), int(rows[1]), int(rows[2])


async def test_a_paid_order_the_channel_fulfilled_holds_nothing(shop: Shop) -> None:
    ledger_before = await _ledger_totals(shop)
    result = await shop.apply(channel_order("1001", [shipped(line("L1", 3, sku="TSHIRT-M"), 3)]))

    assert (result.outcome, result.shortfalls) == (UpsertOutcome.CREATED, [])
    assert (await shop.order("1001")).status == OrderStatus.FULFILLED
    assert await shop.active_reserved("1001") == []
    assert await shop.count(Reservation) == 0
    # Those units left before the stock was counted: nothing is held and on hand stays.
    assert await shop.level() == (10, 0)
    assert await _ledger_totals(shop) == ledger_before
    async with shop.db.sessionmaker() as session:
        item = (await session.scalars(select(OrderItem))).one()
    assert (item.quantity, item.fulfilled_quantity, item.channel_fulfilled_quantity) == (3, 0, 3)


async def test_a_partly_fulfilled_order_holds_the_rest(shop: Shop) -> None:
    await shop.apply(channel_order("1001", [shipped(line("L1", 3, sku="TSHIRT-M"), 1)]))

    assert (await shop.order("1001")).status == OrderStatus.PARTIALLY_FULFILLED
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 2)]
    assert await shop.level() == (10, 2)
    await shop.check_ledger()


async def test_units_shipped_outside_rappit_keep_their_hold_until_recorded(shop: Shop) -> None:
    await shop.apply(channel_order("1001", [line("L1", 3, sku="TSHIRT-M")]))
    assert await shop.level() == (10, 3)

    await shop.apply(channel_order("1001", [shipped(line("L1", 3, sku="TSHIRT-M"), 2)], minutes=1))
    assert (await shop.order("1001")).status == OrderStatus.PARTIALLY_FULFILLED
    # The two shipped units stay held: the channel's fulfilment consumes them when it is
    # recorded; given back now, another order could take them first.
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 3)]
    assert await shop.level() == (10, 3)

    await shop.apply(channel_order("1001", [shipped(line("L1", 3, sku="TSHIRT-M"), 3)], minutes=2))
    assert (await shop.order("1001")).status == OrderStatus.FULFILLED
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 3)]
    assert await shop.level() == (10, 3)
    assert await _ledger_totals(shop) == (2, 10, 3)  # stock in, reserve 3
    await shop.check_ledger()

    # Cancelled after all: nothing is owed, so nothing is kept either.
    await shop.apply(
        channel_order(
            "1001", [shipped(line("L1", 3, sku="TSHIRT-M"), 3)], minutes=3, cancelled=True
        )
    )
    assert await shop.active_reserved("1001") == []
    assert await shop.level() == (10, 0)
    await shop.check_ledger()


async def test_a_stale_version_does_not_take_back_what_the_channel_fulfilled(shop: Shop) -> None:
    await shop.apply(channel_order("1001", [shipped(line("L1", 3, sku="TSHIRT-M"), 3)], minutes=5))
    stale = await shop.apply(channel_order("1001", [line("L1", 3, sku="TSHIRT-M")], minutes=1))

    assert stale.outcome == UpsertOutcome.STALE
    assert (await shop.order("1001")).status == OrderStatus.FULFILLED
    assert await shop.level() == (10, 0)
    async with shop.db.sessionmaker() as session:
        assert (await session.scalars(select(OrderItem.channel_fulfilled_quantity))).all() == [3]


async def test_an_unmapped_line_already_shipped_needs_no_attention(shop: Shop) -> None:
    await shop.apply(
        channel_order(
            "1001",
            [line("L1", 2, sku="TSHIRT-M"), shipped(line("L2", 1, sku="GONE", variant="9"), 1)],
        )
    )
    assert (await shop.order("1001")).status == OrderStatus.PARTIALLY_FULFILLED
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 2)]

    # Still to ship, the same line does need a person.
    await shop.apply(
        channel_order(
            "1002", [line("L1", 2, sku="TSHIRT-M"), line("L2", 1, sku="GONE", variant="9")]
        )
    )
    assert (await shop.order("1002")).status == OrderStatus.NEEDS_ATTENTION


async def test_an_unpaid_order_shipped_in_the_channel_is_fulfilled(shop: Shop) -> None:
    await shop.apply(
        channel_order(
            "1001", [shipped(line("L1", 2, sku="TSHIRT-M"), 2)], payment=PaymentStatus.PENDING
        )
    )
    assert (await shop.order("1001")).status == OrderStatus.FULFILLED
    assert await shop.level() == (10, 0)


async def test_the_channel_reporting_units_rappit_fulfilled_changes_nothing(
    shop: Shop, database: TestDatabase
) -> None:
    """Rappit's own fulfilment consumed the reservation; the channel's next version of the
    order (the echo of that fulfilment) reports the same units fulfilled."""
    result = await shop.apply(channel_order("1001", [line("L1", 3, sku="TSHIRT-M")]))
    async with unit_of_work(database.sessionmaker) as session:
        order = (await OrderService(session, shop.org).repository.lock_orders([result.order.id]))[0]
        item = (await session.scalars(select(OrderItem))).one()
        await FulfillmentService(session, shop.org).record(order, [FulfillmentLine(item.id, 2)])
    assert await shop.level() == (8, 1)
    ledger = await _ledger_totals(shop)

    await shop.apply(channel_order("1001", [shipped(line("L1", 3, sku="TSHIRT-M"), 2)], minutes=1))
    assert (await shop.order("1001")).status == OrderStatus.PARTIALLY_FULFILLED
    assert await shop.active_reserved("1001") == [("L1", "MAIN", 1)]
    assert await shop.level() == (8, 1)
    assert await _ledger_totals(shop) == ledger
    await shop.check_ledger()
