"""All catalog SQL, scoped by organisation. Uniqueness (SKU code per organisation, external
ids per channel) is decided by the database constraints through ``ON CONFLICT DO NOTHING``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.kit.ids import uuid7
from rappit.kit.sql import insert_ignore
from rappit.kit.types import utcnow
from rappit.models import ChannelListing, Product, Sku


class CatalogRepository:
    def __init__(self, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id

    async def add_product(self, title: str) -> Product:
        product = Product(organization_id=self.organization_id, title=title)
        self.session.add(product)
        await self.session.flush()
        return product

    async def get_product(self, product_id: uuid.UUID) -> Product | None:
        return await self.session.scalar(self.products().where(Product.id == product_id))

    def products(self) -> Select[Product]:
        return select(Product).where(Product.organization_id == self.organization_id)

    async def insert_skus(
        self, product_id: uuid.UUID, items: Sequence[tuple[str, str | None]]
    ) -> list[Sku]:
        """Insert (code, title) pairs; returns only the rows inserted. A code the organisation
        already has is left out by the unique constraint ``uq_skus_organization_id_code``."""
        if not items:
            return []
        now = utcnow()
        values = [
            {
                "id": uuid7(),
                "organization_id": self.organization_id,
                "product_id": product_id,
                "code": code,
                "title": title,
                "created_at": now,
                "updated_at": now,
            }
            for code, title in items
        ]
        statement = insert_ignore(self.session, Sku, values).returning(Sku)
        return list((await self.session.scalars(statement)).all())

    def skus(self) -> Select[Sku]:
        return select(Sku).where(Sku.organization_id == self.organization_id)

    async def skus_of_products(
        self, product_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, list[Sku]]:
        ids = set(product_ids)
        grouped: dict[uuid.UUID, list[Sku]] = {product_id: [] for product_id in ids}
        if not ids:
            return grouped
        rows = await self.session.scalars(
            self.skus().where(Sku.product_id.in_(ids)).order_by(Sku.id)
        )
        for sku in rows:
            grouped[sku.product_id].append(sku)
        return grouped

    async def skus_by_codes(self, codes: Iterable[str]) -> dict[str, Sku]:
        codes = set(codes)
        if not codes:
            return {}
        rows = await self.session.scalars(self.skus().where(Sku.code.in_(codes)))
        return {sku.code: sku for sku in rows}

    async def sku_codes(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        ids = set(ids)
        if not ids:
            return {}
        rows = await self.session.execute(
            select(Sku.id, Sku.code).where(
                Sku.organization_id == self.organization_id, Sku.id.in_(ids)
            )
        )
        return {row[0]: row[1] for row in rows}

    async def insert_listing(self, values: dict[str, Any]) -> ChannelListing | None:
        """Insert a listing; None when an external id is already listed on the channel (the
        unique constraints on (channel_id, external_variant_id) and (channel_id,
        external_inventory_item_id) decide)."""
        now = utcnow()
        row = {
            "id": uuid7(),
            "organization_id": self.organization_id,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        statement = insert_ignore(self.session, ChannelListing, row).returning(ChannelListing)
        return await self.session.scalar(statement)

    def listings(self, channel_id: uuid.UUID) -> Select[ChannelListing]:
        return select(ChannelListing).where(
            ChannelListing.organization_id == self.organization_id,
            ChannelListing.channel_id == channel_id,
        )

    async def listing_holding(
        self,
        channel_id: uuid.UUID,
        *,
        external_variant_id: str | None,
        external_inventory_item_id: str | None,
    ) -> ChannelListing | None:
        """The listing of the channel that already uses one of these external ids."""
        conditions = []
        if external_variant_id is not None:
            conditions.append(ChannelListing.external_variant_id == external_variant_id)
        if external_inventory_item_id is not None:
            conditions.append(
                ChannelListing.external_inventory_item_id == external_inventory_item_id
            )
        if not conditions:
            return None
        return await self.session.scalar(
            self.listings(channel_id).where(or_(*conditions)).order_by(ChannelListing.id).limit(1)
        )

    async def listings_by_variant_ids(
        self, channel_id: uuid.UUID, external_variant_ids: Iterable[str]
    ) -> dict[str, ChannelListing]:
        ids = set(external_variant_ids)
        if not ids:
            return {}
        rows = await self.session.scalars(
            self.listings(channel_id).where(ChannelListing.external_variant_id.in_(ids))
        )
        return {row.external_variant_id: row for row in rows if row.external_variant_id}

    async def listings_by_inventory_item_ids(
        self, channel_id: uuid.UUID, external_inventory_item_ids: Iterable[str]
    ) -> dict[str, ChannelListing]:
        ids = set(external_inventory_item_ids)
        if not ids:
            return {}
        rows = await self.session.scalars(
            self.listings(channel_id).where(ChannelListing.external_inventory_item_id.in_(ids))
        )
        return {
            row.external_inventory_item_id: row for row in rows if row.external_inventory_item_id
        }

    async def listings_of_skus(
        self, channel_id: uuid.UUID | None, sku_ids: Iterable[uuid.UUID]
    ) -> list[ChannelListing]:
        ids = set(sku_ids)
        if not ids:
            return []
        statement = select(ChannelListing).where(
            ChannelListing.organization_id == self.organization_id,
            ChannelListing.sku_id.in_(ids),
        )
        if channel_id is not None:
            statement = statement.where(ChannelListing.channel_id == channel_id)
        return list((await self.session.scalars(statement.order_by(ChannelListing.id))).all())
