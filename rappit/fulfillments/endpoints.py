"""Fulfilling orders from Rappit: create a fulfilment (written back to the channel by a job),
read them, change their tracking."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.auth.dependencies import CurrentAuth
from rappit.fulfillments.schemas import FulfillmentCreate, FulfillmentRead, FulfillmentUpdate
from rappit.fulfillments.service import FulfillmentLine, FulfillmentService
from rappit.fulfillments.views import fulfillment_reads
from rappit.kit.errors import NotFound
from rappit.kit.fastapi import DbSession
from rappit.kit.pagination import Page
from rappit.models import Fulfillment, Order

router = APIRouter(tags=["fulfillments"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Repeating the request with the same key answers the fulfilment it made "
        "(200) instead of making another.",
    ),
]


@router.post("/orders/{order_id}/fulfillments", status_code=201)
async def create_fulfillment(
    order_id: uuid.UUID,
    body: FulfillmentCreate,
    auth: CurrentAuth,
    session: DbSession,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> FulfillmentRead:
    service = FulfillmentService(session, auth.organization_id)
    fulfillment, created = await service.create_for_order(
        order_id,
        [FulfillmentLine(item.order_item_id, item.quantity) for item in body.items],
        tracking=body.tracking.to_tracking() if body.tracking else None,
        notify_customer=body.notify_customer,
        idempotency_key=idempotency_key,
    )
    if not created:
        response.status_code = 200
    return (await fulfillment_reads(session, auth.organization_id, [fulfillment]))[0]


@router.get("/orders/{order_id}/fulfillments")
async def list_order_fulfillments(
    order_id: uuid.UUID, auth: CurrentAuth, session: DbSession
) -> Page[FulfillmentRead]:
    org = auth.organization_id
    order = await session.scalar(
        select(Order.id).where(Order.organization_id == org, Order.id == order_id)
    )
    if order is None:
        raise NotFound("order not found")
    # An order has a handful of fulfilments: one page holds them all.
    fulfillments = (
        await session.scalars(
            select(Fulfillment)
            .where(Fulfillment.organization_id == org, Fulfillment.order_id == order_id)
            .order_by(Fulfillment.id)
        )
    ).all()
    return Page(items=await fulfillment_reads(session, org, fulfillments), next_cursor=None)


async def _fulfillment(
    session: AsyncSession, org: uuid.UUID, fulfillment_id: uuid.UUID
) -> Fulfillment:
    fulfillment = await session.scalar(
        select(Fulfillment).where(
            Fulfillment.organization_id == org, Fulfillment.id == fulfillment_id
        )
    )
    if fulfillment is None:
        raise NotFound("fulfilment not found")
    return fulfillment


@router.get("/fulfillments/{fulfillment_id}")
async def get_fulfillment(
    fulfillment_id: uuid.UUID, auth: CurrentAuth, session: DbSession
) -> FulfillmentRead:
    fulfillment = await _fulfillment(session, auth.organization_id, fulfillment_id)
    return (await fulfillment_reads(session, auth.organization_id, [fulfillment]))[0]


@router.patch("/fulfillments/{fulfillment_id}")
async def update_fulfillment(
    fulfillment_id: uuid.UUID, body: FulfillmentUpdate, auth: CurrentAuth, session: DbSession
) -> FulfillmentRead:
    fulfillment = await FulfillmentService(session, auth.organization_id).update_tracking(
        fulfillment_id, body.tracking.to_tracking(), notify_customer=body.notify_customer
    )
    return (await fulfillment_reads(session, auth.organization_id, [fulfillment]))[0]
