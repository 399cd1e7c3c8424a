"""Finding an organisation's SKUs and warehouses by code (what people type)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.errors import NotFound
from rappit.models import Sku, Warehouse


async def sku_by_code(session: AsyncSession, organization_id: uuid.UUID, code: str) -> Sku:
    sku = await session.scalar(
        select(Sku).where(Sku.organization_id == organization_id, Sku.code == code)
    )
    if sku is None:
        raise NotFound(f"SKU '{code}' does not exist")
    return sku


async def warehouse_by_code(
    session: AsyncSession, organization_id: uuid.UUID, code: str
) -> Warehouse:
    warehouse = await session.scalar(
        select(Warehouse).where(
            Warehouse.organization_id == organization_id, Warehouse.code == code
        )
    )
    if warehouse is None:
        raise NotFound(f"warehouse '{code}' does not exist")
    return warehouse
