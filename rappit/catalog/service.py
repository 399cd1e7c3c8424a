"""Catalog use cases: products with their SKUs, and channel listings linking a SKU to a
channel's product, variant and inventory-item ids.

SKU codes are unique per organisation and external ids unique per channel; the database
constraints decide both (``INSERT ... ON CONFLICT DO NOTHING RETURNING``), so two concurrent
requests cannot both create the same code. A refused row raises Conflict, which ends the unit
of work: nothing of the call is committed.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from rappit.catalog.repository import CatalogRepository
from rappit.catalog.schemas import ListingCreate, ProductCreate, SkuCreate
from rappit.channels.service import get_channel
from rappit.inventory.lookups import sku_by_code
from rappit.kit.errors import Conflict, NotFound
from rappit.kit.pagination import paginate
from rappit.models import ChannelListing, Product, Sku
from rappit.orders.service import OrderService

logger = logging.getLogger(__name__)


async def on_catalog_changed(
    session: AsyncSession, organization_id: uuid.UUID, sku_ids: list[uuid.UUID]
) -> None:
    """Called in the creating transaction after SKUs or channel listings were added.

    Order lines that named a SKU code or variant id unknown at the time are mapped now, and
    their orders reserve stock like any other.
    """
    resolved = await OrderService(session, organization_id).resolve_unmapped_lines()
    logger.debug(
        "catalog changed for organization %s: %d SKU(s), %d order(s) re-examined",
        organization_id,
        len(sku_ids),
        resolved,
    )


async def find_skus_by_codes(
    session: AsyncSession, organization_id: uuid.UUID, codes: Iterable[str]
) -> dict[str, Sku]:
    """The organisation's SKUs with these codes, by code; unknown codes are simply absent."""
    return await CatalogRepository(session, organization_id).skus_by_codes(codes)


async def find_listings_by_variant_ids(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    external_variant_ids: Iterable[str],
) -> dict[str, ChannelListing]:
    """A channel's listings by external variant id (how order lines are mapped to SKUs)."""
    return await CatalogRepository(session, organization_id).listings_by_variant_ids(
        channel_id, external_variant_ids
    )


async def find_listings_by_inventory_item_ids(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    external_inventory_item_ids: Iterable[str],
) -> dict[str, ChannelListing]:
    """A channel's listings by external inventory item id (how stock webhooks find a SKU)."""
    return await CatalogRepository(session, organization_id).listings_by_inventory_item_ids(
        channel_id, external_inventory_item_ids
    )


async def find_listings_for_skus(
    session: AsyncSession,
    organization_id: uuid.UUID,
    sku_ids: Iterable[uuid.UUID],
    *,
    channel_id: uuid.UUID | None = None,
) -> list[ChannelListing]:
    """Every listing of these SKUs (on one channel, or on all): where stock is pushed to."""
    return await CatalogRepository(session, organization_id).listings_of_skus(channel_id, sku_ids)


def _quoted(codes: Sequence[str]) -> str:
    return ", ".join(f"'{code}'" for code in codes)


def _duplicates_in_request(items: Sequence[SkuCreate]) -> Conflict | None:
    counts = Counter(item.code for item in items)
    repeated = sorted(code for code, count in counts.items() if count > 1)
    if not repeated:
        return None
    if len(repeated) == 1:
        detail = f"SKU code {_quoted(repeated)} appears more than once in the request"
    else:
        detail = f"SKU codes {_quoted(repeated)} appear more than once in the request"
    return Conflict(detail, extra={"codes": repeated})


def _already_exist(codes: Sequence[str]) -> Conflict:
    if len(codes) == 1:
        detail = f"SKU code {_quoted(codes)} already exists"
    else:
        detail = f"SKU codes {_quoted(codes)} already exist"
    return Conflict(detail, extra={"codes": list(codes)})


class CatalogService:
    def __init__(self, session: AsyncSession, organization_id: uuid.UUID) -> None:
        self.session = session
        self.organization_id = organization_id
        self.repository = CatalogRepository(session, organization_id)

    async def create_product(self, data: ProductCreate) -> tuple[Product, list[Sku]]:
        repeated = _duplicates_in_request(data.skus)
        if repeated is not None:
            raise repeated
        product = await self.repository.add_product(data.title)
        skus = await self._insert_skus(product.id, data.skus)
        return product, skus

    async def add_sku(self, product_id: uuid.UUID, data: SkuCreate) -> Sku:
        product = await self.get_product(product_id)
        (sku,) = await self._insert_skus(product.id, [data])
        return sku

    async def _insert_skus(self, product_id: uuid.UUID, items: Sequence[SkuCreate]) -> list[Sku]:
        inserted = await self.repository.insert_skus(
            product_id, [(item.code, item.title) for item in items]
        )
        by_code = {sku.code: sku for sku in inserted}
        refused = [item.code for item in items if item.code not in by_code]
        if refused:
            raise _already_exist(refused)
        skus = [by_code[item.code] for item in items]
        if skus:
            await on_catalog_changed(self.session, self.organization_id, [s.id for s in skus])
        return skus

    async def get_product(self, product_id: uuid.UUID) -> Product:
        product = await self.repository.get_product(product_id)
        if product is None:
            raise NotFound(f"product '{product_id}' does not exist")
        return product

    async def get_product_with_skus(self, product_id: uuid.UUID) -> tuple[Product, list[Sku]]:
        product = await self.get_product(product_id)
        skus = await self.repository.skus_of_products([product.id])
        return product, skus[product.id]

    async def list_products(
        self, *, cursor: str | None, limit: int
    ) -> tuple[list[tuple[Product, list[Sku]]], str | None]:
        rows, next_cursor = await paginate(
            self.session, self.repository.products(), Product.id, cursor=cursor, limit=limit
        )
        skus = await self.repository.skus_of_products(row.id for row in rows)
        return [(row, skus[row.id]) for row in rows], next_cursor

    async def list_skus(
        self, *, code: str | None, cursor: str | None, limit: int
    ) -> tuple[Sequence[Sku], str | None]:
        statement = self.repository.skus()
        if code is not None:
            statement = statement.where(Sku.code == code)
        return await paginate(self.session, statement, Sku.id, cursor=cursor, limit=limit)

    async def create_listing(
        self, channel_id: uuid.UUID, data: ListingCreate
    ) -> tuple[ChannelListing, str]:
        """Link a SKU to a channel's ids; returns the listing and the SKU code."""
        channel = await get_channel(self.session, self.organization_id, channel_id)
        sku = await sku_by_code(self.session, self.organization_id, data.sku)
        listing = await self.repository.insert_listing(
            {
                "channel_id": channel.id,
                "sku_id": sku.id,
                "external_product_id": data.external_product_id,
                "external_variant_id": data.external_variant_id,
                "external_inventory_item_id": data.external_inventory_item_id,
            }
        )
        if listing is None:
            raise await self._listing_conflict(channel.id, data)
        await on_catalog_changed(self.session, self.organization_id, [sku.id])
        return listing, sku.code

    async def _listing_conflict(self, channel_id: uuid.UUID, data: ListingCreate) -> Conflict:
        # The constraint has already refused the row; this only finds what to name.
        holder = await self.repository.listing_holding(
            channel_id,
            external_variant_id=data.external_variant_id,
            external_inventory_item_id=data.external_inventory_item_id,
        )
        if holder is None:
            return Conflict("an external id of this listing is already listed on the channel")
        codes = await self.repository.sku_codes([holder.sku_id])
        if (
            data.external_variant_id is not None
            and holder.external_variant_id == data.external_variant_id
        ):
            what = f"external variant id '{data.external_variant_id}'"
        else:
            what = f"external inventory item id '{data.external_inventory_item_id}'"
        return Conflict(
            f"{what} is already listed on this channel for SKU '{codes[holder.sku_id]}'"
        )

    async def list_listings(
        self, channel_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> tuple[list[tuple[ChannelListing, str]], str | None]:
        channel = await get_channel(self.session, self.organization_id, channel_id)
        rows, next_cursor = await paginate(
            self.session,
            self.repository.listings(channel.id),
            ChannelListing.id,
            cursor=cursor,
            limit=limit,
        )
        codes = await self.repository.sku_codes(row.sku_id for row in rows)
        return [(row, codes[row.sku_id]) for row in rows], next_cursor
