"""Warehouses, stock levels, adjustments and the movement ledger."""

from __future__ import annotations

import logging
import uuid
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.auth.dependencies import CurrentAuth
from rappit.inventory.lookups import sku_by_code, warehouse_by_code
from rappit.inventory.schemas import (
    AdjustmentCreate,
    MovementRead,
    StockLevelRead,
    WarehouseCreate,
    WarehouseRead,
)
from rappit.inventory.service import InventoryService
from rappit.kit.db import after_commit, unit_of_work
from rappit.kit.errors import Conflict
from rappit.kit.fastapi import DbSession
from rappit.kit.pagination import Page, paginate
from rappit.kit.sql import add_unique
from rappit.models import InventoryMovement, Warehouse
from rappit.orders.service import OrderService
from rappit.runtime import RuntimeDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["inventory"])

Limit = Annotated[int, Query(ge=1, le=200)]


@router.post("/warehouses", status_code=201)
async def create_warehouse(
    body: WarehouseCreate, auth: CurrentAuth, session: DbSession
) -> WarehouseRead:
    warehouse = Warehouse(organization_id=auth.organization_id, **body.model_dump())
    await add_unique(session, warehouse, Conflict(f"warehouse code '{body.code}' already exists"))
    return WarehouseRead.model_validate(warehouse)


@router.get("/warehouses")
async def list_warehouses(
    auth: CurrentAuth,
    session: DbSession,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[WarehouseRead]:
    rows, next_cursor = await paginate(
        session,
        select(Warehouse).where(Warehouse.organization_id == auth.organization_id),
        Warehouse.id,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[WarehouseRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/inventory")
async def list_inventory(
    auth: CurrentAuth,
    session: DbSession,
    sku: str | None = None,
    warehouse: str | None = None,
) -> Page[StockLevelRead]:
    """Stock levels per SKU and warehouse, filtered by SKU and/or warehouse code."""
    sku_id = (await sku_by_code(session, auth.organization_id, sku)).id if sku else None
    warehouse_id = (
        (await warehouse_by_code(session, auth.organization_id, warehouse)).id
        if warehouse
        else None
    )
    rows = await InventoryService(session, auth.organization_id).repository.levels_view(
        sku_id=sku_id, warehouse_id=warehouse_id
    )
    items = [
        StockLevelRead.of(level, sku_code=sku_row.code, warehouse_code=warehouse_row.code)
        for level, sku_row, warehouse_row in rows
    ]
    return Page(items=items, next_cursor=None)


@router.post("/inventory/adjustments", status_code=201)
async def create_adjustment(
    body: AdjustmentCreate, auth: CurrentAuth, session: DbSession, runtime: RuntimeDep
) -> StockLevelRead:
    sku = await sku_by_code(session, auth.organization_id, body.sku)
    warehouse = await warehouse_by_code(session, auth.organization_id, body.warehouse)
    level = await InventoryService(session, auth.organization_id).adjust(
        sku_id=sku.id,
        warehouse_id=warehouse.id,
        delta=body.delta,
        set_to=body.set,
        note=body.reason,
        reference=body.reference,
    )
    if level.available > 0:
        # New stock goes to orders waiting for it, in a transaction of its own after this one
        # commits: that work locks orders before stock, and one lock order must hold everywhere.
        after_commit(
            session,
            partial(allocate_backorders, runtime.sessionmaker, auth.organization_id, sku.id),
        )
    return StockLevelRead.of(level, sku_code=sku.code, warehouse_code=warehouse.code)


async def allocate_backorders(
    sessionmaker: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, sku_id: uuid.UUID
) -> None:
    try:
        async with unit_of_work(sessionmaker) as session:
            await OrderService(session, organization_id).allocate_backorders([sku_id])
    except Exception:
        # The adjustment itself is committed; waiting orders are picked up by the next change.
        logger.exception("allocating new stock to backorders failed")


@router.get("/inventory/movements")
async def list_movements(
    auth: CurrentAuth,
    session: DbSession,
    sku: str | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[MovementRead]:
    statement = select(InventoryMovement).where(
        InventoryMovement.organization_id == auth.organization_id
    )
    if sku:
        sku_row = await sku_by_code(session, auth.organization_id, sku)
        statement = statement.where(InventoryMovement.sku_id == sku_row.id)
    rows, next_cursor = await paginate(
        session, statement, InventoryMovement.id, cursor=cursor, limit=limit
    )
    return Page(items=[MovementRead.model_validate(r) for r in rows], next_cursor=next_cursor)
