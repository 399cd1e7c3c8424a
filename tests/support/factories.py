"""Small builders for test data, written straight through the models and services."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.inventory.service import InventoryService
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelStatus,
    ChannelType,
    InventoryMovement,
    PaymentStatus,
    Product,
    Sku,
    StockLevel,
    Warehouse,
)
from rappit.orders.inputs import ChannelOrder, ChannelOrderLine

TEST_SECRET_KEY = "test-secret-key-for-rappit-tests-only-0123456789"
BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def make_channel(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    shop_domain: str | None = None,
    settings: dict[str, Any] | None = None,
    channel_type: ChannelType = ChannelType.SHOPIFY,
    status: ChannelStatus = ChannelStatus.ACTIVE,
) -> Channel:
    channel = Channel(
        organization_id=organization_id,
        type=channel_type,
        status=status,
        name="Test shop",
        shop_domain=shop_domain or f"shop-{uuid.uuid4().hex[:8]}.myshopify.com",
        api_version="2026-10",
        credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
            {"access_token": "shpat_test", "webhook_secret": "whsec"}
        ),
        settings=settings or {},
        sync_cursors={},
    )
    session.add(channel)
    await session.flush()
    return channel


async def committed_channel(
    sessionmaker: async_sessionmaker[AsyncSession],
    organization_id: uuid.UUID,
    *,
    channel_type: ChannelType = ChannelType.SHOPIFY,
    status: ChannelStatus = ChannelStatus.ACTIVE,
) -> Channel:
    """A channel in its own committed transaction (for tests of what other processes see)."""
    async with unit_of_work(sessionmaker) as session:
        return await make_channel(
            session, organization_id, channel_type=channel_type, status=status
        )


async def make_warehouse(
    session: AsyncSession, organization_id: uuid.UUID, code: str, *, priority: int = 100
) -> Warehouse:
    warehouse = Warehouse(organization_id=organization_id, code=code, name=code, priority=priority)
    session.add(warehouse)
    await session.flush()
    return warehouse


async def make_sku(session: AsyncSession, organization_id: uuid.UUID, code: str) -> Sku:
    product = Product(organization_id=organization_id, title=f"Product {code}")
    session.add(product)
    await session.flush()
    sku = Sku(organization_id=organization_id, product_id=product.id, code=code)
    session.add(sku)
    await session.flush()
    return sku


async def make_listing(
    session: AsyncSession, organization_id: uuid.UUID, channel: Channel, sku: Sku, variant_id: str
) -> ChannelListing:
    listing = ChannelListing(
        organization_id=organization_id,
        channel_id=channel.id,
        sku_id=sku.id,
        external_variant_id=variant_id,
    )
    session.add(listing)
    await session.flush()
    return listing


async def map_location(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel: Channel,
    external_location_id: str,
    warehouse: Warehouse,
) -> None:
    session.add(
        ChannelLocation(
            organization_id=organization_id,
            channel_id=channel.id,
            external_location_id=external_location_id,
            warehouse_id=warehouse.id,
        )
    )
    await session.flush()


async def stock(
    session: AsyncSession, organization_id: uuid.UUID, sku: Sku, warehouse: Warehouse, units: int
) -> None:
    await InventoryService(session, organization_id).adjust(
        sku_id=sku.id, warehouse_id=warehouse.id, delta=units, note="test stock"
    )


def line(
    external_item_id: str,
    quantity: int,
    *,
    sku: str | None = None,
    variant: str | None = None,
    price: str = "10.00",
) -> ChannelOrderLine:
    return ChannelOrderLine(
        external_item_id=external_item_id,
        quantity=quantity,
        sku=sku,
        external_variant_id=variant,
        price=Decimal(price),
        title=f"Item {external_item_id}",
    )


def channel_order(
    external_order_id: str,
    lines: list[ChannelOrderLine],
    *,
    minutes: int = 0,
    payment: PaymentStatus = PaymentStatus.PAID,
    cancelled: bool = False,
    location: str | None = None,
) -> ChannelOrder:
    updated_at = BASE_TIME + timedelta(minutes=minutes)
    return ChannelOrder(
        external_order_id=external_order_id,
        updated_at=updated_at,
        name=f"#{external_order_id}",
        payment_status=payment,
        cancelled_at=updated_at if cancelled else None,
        currency="EUR",
        total_price=Decimal("20.00"),
        customer={"email": "buyer@example.com"},
        shipping_address={"city": "Berlin", "country_code": "DE"},
        external_location_id=location,
        lines=lines,
    )


async def levels(
    session: AsyncSession, organization_id: uuid.UUID
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, int]]:
    rows = await session.scalars(
        select(StockLevel).where(StockLevel.organization_id == organization_id)
    )
    return {(r.sku_id, r.warehouse_id): (r.on_hand, r.reserved) for r in rows}


async def assert_ledger_replays(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """The ledger invariant: summing every movement gives today's stock levels exactly."""
    replay: dict[tuple[uuid.UUID, uuid.UUID], list[int]] = defaultdict(lambda: [0, 0])
    rows = await session.execute(
        select(
            InventoryMovement.sku_id,
            InventoryMovement.warehouse_id,
            func.sum(InventoryMovement.on_hand_delta),
            func.sum(InventoryMovement.reserved_delta),
        )
        .where(InventoryMovement.organization_id == organization_id)
        .group_by(InventoryMovement.sku_id, InventoryMovement.warehouse_id)
    )
    for sku_id, warehouse_id, on_hand, reserved in rows:
        replay[(sku_id, warehouse_id)] = [int(on_hand), int(reserved)]
    current = await levels(session, organization_id)
    replayed = {key: tuple(value) for key, value in replay.items()}
    # Rows that never moved are (0, 0) on both sides.
    for key, value in current.items():
        if value == (0, 0):
            replayed.setdefault(key, (0, 0))
    assert replayed == current
