"""Read models for the admin API: one order with everything a person needs to see about it."""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.types import format_money
from rappit.models import (
    Fulfillment,
    FulfillmentItem,
    InventoryMovement,
    Order,
    OrderItem,
    Reservation,
    Sku,
    Warehouse,
)
from rappit.orders.schemas import (
    FulfillmentRead,
    MovementRead,
    OrderDetail,
    OrderItemRead,
    OrderSummary,
    ReservationRead,
)
from rappit.orders.service import open_units


def order_summary(order: Order) -> OrderSummary:
    return OrderSummary(
        id=order.id,
        channel_id=order.channel_id,
        external_order_id=order.external_order_id,
        name=order.name,
        status=order.status,
        payment_status=order.payment_status,
        currency=order.currency,
        total_price=format_money(order.total_price) if order.total_price is not None else None,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


async def order_detail(session: AsyncSession, order: Order) -> OrderDetail:
    org = order.organization_id
    items = list(
        (
            await session.scalars(
                select(OrderItem)
                .where(OrderItem.organization_id == org, OrderItem.order_id == order.id)
                .order_by(OrderItem.id)
            )
        ).all()
    )
    item_ids = [item.id for item in items]
    reservation_rows = (
        await session.execute(
            select(Reservation, Sku.code, Warehouse.code)
            .join(Sku, Sku.id == Reservation.sku_id)
            .join(Warehouse, Warehouse.id == Reservation.warehouse_id)
            .where(Reservation.organization_id == org, Reservation.order_item_id.in_(item_ids))
            .order_by(Reservation.id)
        )
    ).all()
    mapped = [item.sku_id for item in items if item.sku_id is not None]
    sku_codes = {
        row[0]: row[1]
        for row in await session.execute(
            select(Sku.id, Sku.code).where(Sku.organization_id == org, Sku.id.in_(mapped))
        )
    }
    reserved: dict[uuid.UUID, int] = defaultdict(int)
    reservations = []
    for reservation, sku_code, warehouse_code in reservation_rows:
        if reservation.is_active:
            reserved[reservation.order_item_id] += reservation.quantity
        reservations.append(
            ReservationRead(
                id=reservation.id,
                order_item_id=reservation.order_item_id,
                sku=sku_code,
                warehouse=warehouse_code,
                quantity=reservation.quantity,
                created_at=reservation.created_at,
                released_at=reservation.released_at,
                consumed_at=reservation.consumed_at,
            )
        )
    ledger_rows = (
        await session.execute(
            select(InventoryMovement, Sku.code, Warehouse.code)
            .join(Sku, Sku.id == InventoryMovement.sku_id)
            .join(Warehouse, Warehouse.id == InventoryMovement.warehouse_id)
            .where(InventoryMovement.organization_id == org, InventoryMovement.order_id == order.id)
            .order_by(InventoryMovement.id)
        )
    ).all()
    fulfillments = list(
        (
            await session.scalars(
                select(Fulfillment)
                .where(Fulfillment.organization_id == org, Fulfillment.order_id == order.id)
                .order_by(Fulfillment.id)
            )
        ).all()
    )
    fulfillment_items = (
        await session.scalars(
            select(FulfillmentItem).where(
                FulfillmentItem.organization_id == org,
                FulfillmentItem.fulfillment_id.in_([f.id for f in fulfillments]),
            )
        )
    ).all()
    items_by_fulfillment: dict[uuid.UUID, list[FulfillmentItem]] = defaultdict(list)
    for fulfillment_item in fulfillment_items:
        items_by_fulfillment[fulfillment_item.fulfillment_id].append(fulfillment_item)

    summary = order_summary(order)
    return OrderDetail(
        **summary.model_dump(),
        fulfillment_status=order.fulfillment_status,
        customer=order.customer,
        shipping_address=order.shipping_address,
        billing_address=order.billing_address,
        external_location_id=order.external_location_id,
        channel_updated_at=order.channel_updated_at,
        cancelled_at=order.cancelled_at,
        is_test=order.is_test,
        details=order.details,
        items=[
            OrderItemRead(
                id=item.id,
                external_item_id=item.external_item_id,
                external_variant_id=item.external_variant_id,
                sku=sku_codes.get(item.sku_id) if item.sku_id else item.sku_code,
                sku_id=item.sku_id,
                title=item.title,
                quantity=item.quantity,
                fulfilled_quantity=item.fulfilled_quantity,
                channel_fulfilled_quantity=item.channel_fulfilled_quantity,
                open_quantity=open_units(item),
                reserved_quantity=reserved[item.id],
                price=format_money(item.price) if item.price is not None else None,
            )
            for item in items
        ],
        reservations=reservations,
        ledger=[
            MovementRead(
                sku=sku_code,
                warehouse=warehouse_code,
                on_hand_delta=movement.on_hand_delta,
                reserved_delta=movement.reserved_delta,
                reason=movement.reason,
                created_at=movement.created_at,
            )
            for movement, sku_code, warehouse_code in ledger_rows
        ],
        fulfillments=[
            FulfillmentRead(
                id=f.id,
                external_fulfillment_id=f.external_fulfillment_id,
                status=f.status,
                tracking_number=f.tracking_number,
                tracking_company=f.tracking_company,
                tracking_url=f.tracking_url,
                items=[
                    {"order_item_id": str(i.order_item_id), "quantity": i.quantity}
                    for i in items_by_fulfillment[f.id]
                ],
                created_at=f.created_at,
            )
            for f in fulfillments
        ],
    )
