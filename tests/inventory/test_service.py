"""Inventory service: adjustments, guards, the ledger and allocation planning."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from rappit.inventory.service import (
    Allocation,
    InventoryService,
    StockBelowReserved,
    plan_allocation,
)
from rappit.kit.db import unit_of_work
from rappit.kit.errors import InvalidInput
from rappit.models import InventoryMovement, StockLevel, Warehouse
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import assert_ledger_replays, make_sku, make_warehouse


async def test_adjust_by_delta_and_set_writes_the_ledger(
    database: TestDatabase, tenant: Tenant
) -> None:
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        sku = await make_sku(session, org, "A")
        warehouse = await make_warehouse(session, org, "W")
        service = InventoryService(session, org)
        level = await service.adjust(sku_id=sku.id, warehouse_id=warehouse.id, delta=7, note="PO-1")
        assert (level.on_hand, level.reserved, level.available) == (7, 0, 7)
        level = await service.adjust(
            sku_id=sku.id, warehouse_id=warehouse.id, set_to=4, note="count"
        )
        assert (level.on_hand, level.available) == (4, 4)
        # Setting to the current value is not a movement.
        await service.adjust(sku_id=sku.id, warehouse_id=warehouse.id, set_to=4, note="recount")

    async with database.sessionmaker() as session:
        movements = (
            await session.scalars(select(InventoryMovement).order_by(InventoryMovement.id))
        ).all()
        assert [(m.on_hand_delta, m.reserved_delta, m.reason, m.note) for m in movements] == [
            (7, 0, "adjustment", "PO-1"),
            (-3, 0, "adjustment", "count"),
        ]
        await assert_ledger_replays(session, org)


async def test_adjust_below_reserved_is_refused(database: TestDatabase, tenant: Tenant) -> None:
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        sku = await make_sku(session, org, "A")
        warehouse = await make_warehouse(session, org, "W")
        await InventoryService(session, org).adjust(
            sku_id=sku.id, warehouse_id=warehouse.id, delta=5
        )
        level = (await session.scalars(select(StockLevel))).one()
        level.reserved = 3  # as if three units were held for orders

    with pytest.raises(StockBelowReserved) as refused:
        async with unit_of_work(database.sessionmaker) as session:
            await InventoryService(session, org).adjust(
                sku_id=sku.id, warehouse_id=warehouse.id, delta=-3
            )
    assert refused.value.extra == {"on_hand": 5, "reserved": 3}
    with pytest.raises(StockBelowReserved):
        async with unit_of_work(database.sessionmaker) as session:
            await InventoryService(session, org).adjust(
                sku_id=sku.id, warehouse_id=warehouse.id, set_to=2
            )
    async with database.sessionmaker() as session:
        level = (await session.scalars(select(StockLevel))).one()
        assert (level.on_hand, level.reserved) == (5, 3)


@pytest.mark.parametrize(
    ("delta", "set_to", "message"),
    [
        (None, None, "exactly one"),
        (1, 1, "exactly one"),
        (None, -1, "must not be negative"),
    ],
)
async def test_adjust_rejects_bad_arguments(
    database: TestDatabase, tenant: Tenant, delta: int | None, set_to: int | None, message: str
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        sku = await make_sku(session, tenant.organization_id, "A")
        warehouse = await make_warehouse(session, tenant.organization_id, "W")
        with pytest.raises(InvalidInput, match=message):
            await InventoryService(session, tenant.organization_id).adjust(
                sku_id=sku.id, warehouse_id=warehouse.id, delta=delta, set_to=set_to
            )


def _candidate(
    code: str, priority: int, on_hand: int, reserved: int = 0
) -> tuple[StockLevel, Warehouse]:
    warehouse = Warehouse(id=uuid.uuid4(), code=code, name=code, priority=priority)
    level = StockLevel(warehouse_id=warehouse.id, on_hand=on_hand, reserved=reserved)
    return level, warehouse


def test_plan_prefers_one_warehouse_that_has_it_all() -> None:
    small = _candidate("SMALL", 1, 2)
    whole = _candidate("WHOLE", 5, 9)
    assert plan_allocation(4, [small, whole], None) == [Allocation(whole[1].id, 4)]


def test_plan_splits_in_preference_order_when_no_warehouse_has_enough() -> None:
    a = _candidate("A", 1, 2)
    b = _candidate("B", 2, 3, reserved=1)
    c = _candidate("C", 2, 5, reserved=5)
    assert plan_allocation(10, [c, b, a], None) == [
        Allocation(a[1].id, 2),
        Allocation(b[1].id, 2),
    ]


def test_plan_prefers_the_mapped_warehouse() -> None:
    a = _candidate("A", 1, 10)
    mapped = _candidate("M", 99, 10)
    assert plan_allocation(3, [a, mapped], mapped[1].id) == [Allocation(mapped[1].id, 3)]


def test_plan_with_nothing_available_is_empty() -> None:
    assert plan_allocation(3, [_candidate("A", 1, 4, reserved=4)], None) == []
