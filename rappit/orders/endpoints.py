"""Orders: list with filters and cursor pagination, and one order in full."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from rappit.auth.dependencies import CurrentAuth
from rappit.kit.errors import NotFound
from rappit.kit.fastapi import DbSession
from rappit.kit.pagination import Page, paginate
from rappit.models import Order, OrderStatus
from rappit.orders.schemas import OrderDetail, OrderSummary
from rappit.orders.views import order_detail, order_summary

router = APIRouter(tags=["orders"])


@router.get("/orders")
async def list_orders(
    auth: CurrentAuth,
    session: DbSession,
    channel_id: uuid.UUID | None = None,
    external_order_id: str | None = None,
    status: OrderStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[OrderSummary]:
    statement = select(Order).where(Order.organization_id == auth.organization_id)
    if channel_id is not None:
        statement = statement.where(Order.channel_id == channel_id)
    if external_order_id is not None:
        statement = statement.where(Order.external_order_id == external_order_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    rows, next_cursor = await paginate(session, statement, Order.id, cursor=cursor, limit=limit)
    return Page(items=[order_summary(order) for order in rows], next_cursor=next_cursor)


@router.get("/orders/{order_id}")
async def get_order(order_id: uuid.UUID, auth: CurrentAuth, session: DbSession) -> OrderDetail:
    order = await session.scalar(
        select(Order).where(Order.organization_id == auth.organization_id, Order.id == order_id)
    )
    if order is None:
        raise NotFound("order not found")
    return await order_detail(session, order)
