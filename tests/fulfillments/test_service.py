"""Fulfilments consume reserved stock exactly once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rappit.fulfillments.service import FulfillmentLine, FulfillmentService, Tracking
from rappit.kit.db import unit_of_work
from rappit.kit.errors import InvalidInput
from rappit.models import Channel, Fulfillment, Order, OrderItem, OrderStatus
from rappit.orders.service import OrderService
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import (
    assert_ledger_replays,
    channel_order,
    levels,
    line,
    make_channel,
    make_sku,
    make_warehouse,
    stock,
)


async def _order_with_stock(database: TestDatabase, tenant: Tenant, quantity: int = 3) -> Order:
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, org)
        sku = await make_sku(session, org, "A")
        await stock(session, org, sku, await make_warehouse(session, org, "W"), 10)
        result = await OrderService(session, org).create_or_update_from_channel(
            channel, channel_order("1001", [line("L1", quantity, sku="A")])
        )
    return result.order


async def _fulfil(
    database: TestDatabase, tenant: Tenant, order: Order, quantity: int, external_id: str | None
) -> bool:
    async with unit_of_work(database.sessionmaker) as session:
        locked = (
            await OrderService(session, tenant.organization_id).repository.lock_orders([order.id])
        )[0]
        item = (await session.scalars(select(OrderItem))).one()
        result = await FulfillmentService(session, tenant.organization_id).record(
            locked,
            [FulfillmentLine(item.id, quantity)],
            external_fulfillment_id=external_id,
            tracking=Tracking(number="1Z999", company="DHL Express"),
        )
        return result.created


async def _state(database: TestDatabase, tenant: Tenant) -> tuple[str, tuple[int, int], int]:
    async with database.sessionmaker() as session:
        order = (await session.scalars(select(Order))).one()
        level = next(iter((await levels(session, tenant.organization_id)).values()))
        item = (await session.scalars(select(OrderItem))).one()
        await assert_ledger_replays(session, tenant.organization_id)
        return order.status, level, item.fulfilled_quantity


async def test_partial_then_full_fulfilment_consumes_stock(
    database: TestDatabase, tenant: Tenant
) -> None:
    order = await _order_with_stock(database, tenant)
    assert await _state(database, tenant) == (OrderStatus.RESERVED, (10, 3), 0)

    assert await _fulfil(database, tenant, order, 1, "F1") is True
    assert await _state(database, tenant) == (OrderStatus.PARTIALLY_FULFILLED, (9, 2), 1)

    assert await _fulfil(database, tenant, order, 2, "F2") is True
    assert await _state(database, tenant) == (OrderStatus.FULFILLED, (7, 0), 3)


async def test_the_same_channel_fulfilment_twice_consumes_once(
    database: TestDatabase, tenant: Tenant
) -> None:
    order = await _order_with_stock(database, tenant)
    assert await _fulfil(database, tenant, order, 2, "F1") is True
    assert await _fulfil(database, tenant, order, 2, "F1") is False
    assert await _state(database, tenant) == (OrderStatus.PARTIALLY_FULFILLED, (8, 1), 2)
    async with database.sessionmaker() as session:
        fulfillment = (await session.scalars(select(Fulfillment))).one()
    assert (fulfillment.tracking_number, fulfillment.tracking_company) == ("1Z999", "DHL Express")


async def test_fulfilling_more_than_is_open_is_refused(
    database: TestDatabase, tenant: Tenant
) -> None:
    order = await _order_with_stock(database, tenant)
    with pytest.raises(InvalidInput, match="3 unit\\(s\\) left to fulfil, not 4"):
        await _fulfil(database, tenant, order, 4, None)
    assert await _state(database, tenant) == (OrderStatus.RESERVED, (10, 3), 0)


async def test_shipping_an_unpaid_order_takes_free_stock(
    database: TestDatabase, tenant: Tenant
) -> None:
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, org)
        sku = await make_sku(session, org, "A")
        await stock(session, org, sku, await make_warehouse(session, org, "W"), 10)
        result = await OrderService(session, org).create_or_update_from_channel(
            channel,
            channel_order("1001", [line("L1", 2, sku="A")], payment="pending"),  # type: ignore[arg-type]
        )
    assert await _fulfil(database, tenant, result.order, 2, "F1") is True
    assert await _state(database, tenant) == (OrderStatus.FULFILLED, (8, 0), 2)
    async with database.sessionmaker() as session:
        assert (await session.get_one(Channel, channel.id)).id == channel.id
