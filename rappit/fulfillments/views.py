"""Fulfilments as the admin API shows them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.fulfillments.schemas import FulfillmentItemRead, FulfillmentRead, TrackingRead
from rappit.models import Fulfillment, FulfillmentItem, OrderItem


async def fulfillment_reads(
    session: AsyncSession, organization_id: uuid.UUID, fulfillments: Sequence[Fulfillment]
) -> list[FulfillmentRead]:
    rows = await session.execute(
        select(FulfillmentItem, OrderItem.external_item_id)
        .join(OrderItem, OrderItem.id == FulfillmentItem.order_item_id)
        .where(
            FulfillmentItem.organization_id == organization_id,
            FulfillmentItem.fulfillment_id.in_([f.id for f in fulfillments]),
        )
        .order_by(FulfillmentItem.id)
    )
    items: dict[uuid.UUID, list[FulfillmentItemRead]] = defaultdict(list)
    for item, external_item_id in rows:
        items[item.fulfillment_id].append(
            FulfillmentItemRead(
                order_item_id=item.order_item_id,
                external_item_id=external_item_id,
                quantity=item.quantity,
            )
        )
    return [
        FulfillmentRead(
            id=f.id,
            order_id=f.order_id,
            external_fulfillment_id=f.external_fulfillment_id,
            status=f.status,
            tracking=TrackingRead(
                number=f.tracking_number, company=f.tracking_company, url=f.tracking_url
            ),
            notify_customer=f.notify_customer,
            items=items[f.id],
            sync_status=f.sync_status,
            sync_error=f.sync_error,
            created_at=f.created_at,
            updated_at=f.updated_at,
        )
        for f in fulfillments
    ]
