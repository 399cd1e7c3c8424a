"""Customer personal data on orders: export for a data request, erasure for redaction.

Erasure keeps the order, its lines, reservations and the stock ledger (they are the merchant's
records) and removes who the customer is and where they live.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.types import format_money, utcnow
from rappit.models import Order, OrderItem

# Fields in ``Order.details`` that identify or reach a person.
_PERSONAL_DETAILS = ("email", "phone", "note", "note_attributes")


def _erase(order: Order) -> None:
    order.customer = None
    order.customer_external_id = None
    order.shipping_address = None
    order.billing_address = None
    details = {k: v for k, v in (order.details or {}).items() if k not in _PERSONAL_DETAILS}
    details["redacted_at"] = utcnow().isoformat()
    order.details = details


async def redact_customer(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    customer_id: str | None,
    external_order_ids: Sequence[str],
) -> list[str]:
    """Erase one customer's data from the channel's orders (those named, and any carrying the
    customer's id); returns the external ids of the orders erased."""
    conditions = []
    if customer_id:
        conditions.append(Order.customer_external_id == customer_id)
    if external_order_ids:
        conditions.append(Order.external_order_id.in_(list(external_order_ids)))
    if not conditions:
        return []
    orders = (
        await session.scalars(
            select(Order)
            .where(
                Order.organization_id == organization_id,
                Order.channel_id == channel_id,
                or_(*conditions),
            )
            .order_by(Order.id)
            .with_for_update()
        )
    ).all()
    for order in orders:
        _erase(order)
    return [order.external_order_id for order in orders]


async def redact_shop(
    session: AsyncSession, organization_id: uuid.UUID, channel_id: uuid.UUID
) -> list[str]:
    orders = (
        await session.scalars(
            select(Order)
            .where(Order.organization_id == organization_id, Order.channel_id == channel_id)
            .order_by(Order.id)
            .with_for_update()
        )
    ).all()
    for order in orders:
        _erase(order)
    return [order.external_order_id for order in orders]


async def customer_data(
    session: AsyncSession, organization_id: uuid.UUID, channel_id: uuid.UUID, customer_id: str
) -> list[dict[str, Any]]:
    """Everything Rappit holds about one customer of a channel, order by order."""
    orders = (
        await session.scalars(
            select(Order)
            .where(
                Order.organization_id == organization_id,
                Order.channel_id == channel_id,
                Order.customer_external_id == customer_id,
            )
            .order_by(Order.id)
        )
    ).all()
    result = []
    for order in orders:
        items = (
            await session.scalars(
                select(OrderItem)
                .where(OrderItem.organization_id == organization_id, OrderItem.order_id == order.id)
                .order_by(OrderItem.id)
            )
        ).all()
        result.append(
            {
                "external_order_id": order.external_order_id,
                "name": order.name,
                "created_at": order.created_at.isoformat(),
                "customer": order.customer,
                "shipping_address": order.shipping_address,
                "billing_address": order.billing_address,
                "email": (order.details or {}).get("email"),
                "phone": (order.details or {}).get("phone"),
                "currency": order.currency,
                "total_price": format_money(order.total_price) if order.total_price else None,
                "items": [
                    {"title": item.title, "sku": item.sku_code, "quantity": item.quantity}
                    for item in items
                ],
            }
        )
    return result
