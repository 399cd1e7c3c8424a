"""Overselling under real parallelism on PostgreSQL (row locks, READ COMMITTED)."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from rappit.kit.db import unit_of_work
from rappit.models import Channel, Order, StockLevel
from rappit.orders.service import OrderService
from tests.conftest import TestDatabase, make_tenant
from tests.support.factories import (
    assert_ledger_replays,
    channel_order,
    line,
    make_channel,
    make_sku,
    make_warehouse,
    stock,
)


async def test_64_concurrent_orders_never_oversell_100_units(
    postgres_database: TestDatabase,
) -> None:
    db = postgres_database
    tenant = await make_tenant(db, "Acme")
    org = tenant.organization_id
    async with unit_of_work(db.sessionmaker) as session:
        channel = await make_channel(session, org)
        sku = await make_sku(session, org, "HOT")
        # Two warehouses, so allocations also split and compete across rows.
        await stock(session, org, sku, await make_warehouse(session, org, "A", priority=1), 60)
        await stock(session, org, sku, await make_warehouse(session, org, "B", priority=2), 40)

    async def place(number: int) -> None:
        async with unit_of_work(db.sessionmaker) as session:
            channel_row = await session.get_one(Channel, channel.id)
            await OrderService(session, org).create_or_update_from_channel(
                channel_row, channel_order(f"O{number}", [line("L1", 3, sku="HOT")])
            )

    await asyncio.gather(*(place(n) for n in range(64)))

    async with db.sessionmaker() as session:
        rows = (await session.scalars(select(StockLevel))).all()
        assert sorted((r.on_hand, r.reserved) for r in rows) == [(40, 40), (60, 60)]
        statuses = Counter((await session.scalars(select(Order.status))).all())
        # 64 orders x 3 units against 100: 33 complete (99), one gets the last unit, 30 wait.
        assert statuses == {"RESERVED": 33, "PARTIALLY_RESERVED": 1, "BACKORDERED": 30}
        await assert_ledger_replays(session, org)
