"""All order queries, scoped by organisation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.ids import uuid7
from rappit.kit.sql import insert_ignore
from rappit.kit.types import utcnow
from rappit.models import (
    ChannelListing,
    ChannelLocation,
    Order,
    OrderItem,
    OrderStatus,
    PaymentStatus,
    Reservation,
    Sku,
)


class OrderRepository:
    def __init__(self, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id

    async def insert_if_absent(self, channel_id: uuid.UUID, external_order_id: str) -> None:
        """Create the order's row if the unique key has none yet; a concurrent insert of the
        same order waits for the other transaction and then does nothing."""
        await self.insert_all_if_absent(channel_id, [external_order_id])

    async def insert_all_if_absent(
        self, channel_id: uuid.UUID, external_order_ids: Sequence[str]
    ) -> None:
        """``insert_if_absent`` for several orders in one statement (in a fixed order)."""
        if not external_order_ids:
            return
        now = utcnow()
        rows = [
            {
                "id": uuid7(),
                "organization_id": self.organization_id,
                "channel_id": channel_id,
                "external_order_id": external_order_id,
                "status": OrderStatus.PENDING,
                "payment_status": PaymentStatus.PENDING,
                "is_test": False,
                "details": {},
                "created_at": now,
                "updated_at": now,
            }
            for external_order_id in sorted(set(external_order_ids))
        ]
        await self.session.execute(insert_ignore(self.session, Order, rows))

    async def lock_by_external_ids(
        self, channel_id: uuid.UUID, external_order_ids: Sequence[str]
    ) -> list[Order]:
        """Lock the channel's orders with these ids, in id order (``lock_orders``)."""
        if not external_order_ids:
            return []
        order_ids = (
            await self.session.scalars(
                select(Order.id).where(
                    Order.organization_id == self.organization_id,
                    Order.channel_id == channel_id,
                    Order.external_order_id.in_(sorted(set(external_order_ids))),
                )
            )
        ).all()
        return await self.lock_orders(order_ids)

    async def lock_by_external_id(self, channel_id: uuid.UUID, external_order_id: str) -> Order:
        order = await self.session.scalar(
            select(Order)
            .where(
                Order.organization_id == self.organization_id,
                Order.channel_id == channel_id,
                Order.external_order_id == external_order_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert order is not None, "lock_by_external_id is called after insert_if_absent"
        return order

    async def lock_existing(self, channel_id: uuid.UUID, external_order_id: str) -> Order | None:
        order: Order | None = await self.session.scalar(
            select(Order)
            .where(
                Order.organization_id == self.organization_id,
                Order.channel_id == channel_id,
                Order.external_order_id == external_order_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return order

    async def lock_orders(self, order_ids: Sequence[uuid.UUID]) -> list[Order]:
        """Lock orders in id order (the fixed order that keeps concurrent callers deadlock-free)."""
        if not order_ids:
            return []
        rows = await self.session.scalars(
            select(Order)
            .where(Order.organization_id == self.organization_id, Order.id.in_(set(order_ids)))
            .order_by(Order.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def get(self, order_id: uuid.UUID) -> Order | None:
        return await self.session.scalar(
            select(Order).where(Order.organization_id == self.organization_id, Order.id == order_id)
        )

    async def items(self, order_id: uuid.UUID) -> list[OrderItem]:
        rows = await self.session.scalars(
            select(OrderItem)
            .where(
                OrderItem.organization_id == self.organization_id, OrderItem.order_id == order_id
            )
            .order_by(OrderItem.id)
            .execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def reservations(
        self, order_item_ids: Sequence[uuid.UUID], *, active_only: bool
    ) -> list[Reservation]:
        if not order_item_ids:
            return []
        statement = select(Reservation).where(
            Reservation.organization_id == self.organization_id,
            Reservation.order_item_id.in_(order_item_ids),
        )
        if active_only:
            statement = statement.where(
                Reservation.released_at.is_(None), Reservation.consumed_at.is_(None)
            )
        rows = await self.session.scalars(
            statement.order_by(Reservation.id).execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def warehouse_for_location(
        self, channel_id: uuid.UUID, external_location_id: str | None
    ) -> uuid.UUID | None:
        if not external_location_id:
            return None
        return await self.session.scalar(
            select(ChannelLocation.warehouse_id).where(
                ChannelLocation.organization_id == self.organization_id,
                ChannelLocation.channel_id == channel_id,
                ChannelLocation.external_location_id == external_location_id,
            )
        )

    async def sku_for_variant(self, channel_id: uuid.UUID, variant_id: str) -> uuid.UUID | None:
        return await self.session.scalar(
            select(ChannelListing.sku_id).where(
                ChannelListing.organization_id == self.organization_id,
                ChannelListing.channel_id == channel_id,
                ChannelListing.external_variant_id == variant_id,
            )
        )

    async def sku_for_code(self, code: str) -> uuid.UUID | None:
        return await self.session.scalar(
            select(Sku.id).where(Sku.organization_id == self.organization_id, Sku.code == code)
        )

    async def record_listing(
        self,
        channel_id: uuid.UUID,
        sku_id: uuid.UUID,
        *,
        variant_id: str,
        product_id: str | None,
    ) -> None:
        now = utcnow()
        await self.session.execute(
            insert_ignore(
                self.session,
                ChannelListing,
                {
                    "id": uuid7(),
                    "organization_id": self.organization_id,
                    "channel_id": channel_id,
                    "sku_id": sku_id,
                    "external_variant_id": variant_id,
                    "external_product_id": product_id,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        )

    async def orders_with_unmapped_lines(self) -> list[uuid.UUID]:
        rows = await self.session.scalars(
            select(OrderItem.order_id)
            .join(Order, Order.id == OrderItem.order_id)
            .where(
                OrderItem.organization_id == self.organization_id,
                OrderItem.sku_id.is_(None),
                OrderItem.quantity > 0,
                Order.status == OrderStatus.NEEDS_ATTENTION,
            )
            .distinct()
        )
        return list(rows.all())

    async def orders_short_of(self, sku_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Orders waiting for stock of these SKUs, oldest first (first come, first served)."""
        if not sku_ids:
            return []
        rows = await self.session.execute(
            select(Order.id, Order.created_at)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .where(
                Order.organization_id == self.organization_id,
                Order.status.in_([OrderStatus.BACKORDERED, OrderStatus.PARTIALLY_RESERVED]),
                OrderItem.sku_id.in_(sku_ids),
            )
            .distinct()
            .order_by(Order.created_at, Order.id)
        )
        return [row[0] for row in rows]
