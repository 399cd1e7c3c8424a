"""Products, SKUs and channel listings."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from rappit.auth.dependencies import CurrentAuth
from rappit.catalog.schemas import (
    ListingCreate,
    ListingRead,
    ProductCreate,
    ProductRead,
    ProductSkuRead,
    SkuCreate,
    SkuRead,
)
from rappit.catalog.service import CatalogService
from rappit.kit.fastapi import DbSession
from rappit.kit.pagination import Page
from rappit.models import ChannelListing, Product, Sku

router = APIRouter(tags=["catalog"])

Limit = Annotated[int, Query(ge=1, le=200)]


def _product_read(product: Product, skus: list[Sku]) -> ProductRead:
    return ProductRead(
        id=product.id,
        title=product.title,
        skus=[ProductSkuRead.model_validate(sku) for sku in skus],
        created_at=product.created_at,
    )


def _listing_read(listing: ChannelListing, sku_code: str) -> ListingRead:
    return ListingRead(
        id=listing.id,
        channel_id=listing.channel_id,
        sku=sku_code,
        external_product_id=listing.external_product_id,
        external_variant_id=listing.external_variant_id,
        external_inventory_item_id=listing.external_inventory_item_id,
    )


@router.post("/products", status_code=201)
async def create_product(body: ProductCreate, auth: CurrentAuth, session: DbSession) -> ProductRead:
    product, skus = await CatalogService(session, auth.organization_id).create_product(body)
    return _product_read(product, skus)


@router.get("/products")
async def list_products(
    auth: CurrentAuth,
    session: DbSession,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[ProductRead]:
    rows, next_cursor = await CatalogService(session, auth.organization_id).list_products(
        cursor=cursor, limit=limit
    )
    return Page(items=[_product_read(*row) for row in rows], next_cursor=next_cursor)


@router.get("/products/{product_id}")
async def get_product(product_id: uuid.UUID, auth: CurrentAuth, session: DbSession) -> ProductRead:
    service = CatalogService(session, auth.organization_id)
    return _product_read(*await service.get_product_with_skus(product_id))


@router.post("/products/{product_id}/skus", status_code=201)
async def create_sku(
    product_id: uuid.UUID, body: SkuCreate, auth: CurrentAuth, session: DbSession
) -> SkuRead:
    sku = await CatalogService(session, auth.organization_id).add_sku(product_id, body)
    return SkuRead.model_validate(sku)


@router.get("/skus")
async def list_skus(
    auth: CurrentAuth,
    session: DbSession,
    code: str | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[SkuRead]:
    rows, next_cursor = await CatalogService(session, auth.organization_id).list_skus(
        code=code, cursor=cursor, limit=limit
    )
    return Page(items=[SkuRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/channels/{channel_id}/listings", status_code=201)
async def create_listing(
    channel_id: uuid.UUID, body: ListingCreate, auth: CurrentAuth, session: DbSession
) -> ListingRead:
    listing, sku_code = await CatalogService(session, auth.organization_id).create_listing(
        channel_id, body
    )
    return _listing_read(listing, sku_code)


@router.get("/channels/{channel_id}/listings")
async def list_listings(
    channel_id: uuid.UUID,
    auth: CurrentAuth,
    session: DbSession,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[ListingRead]:
    rows, next_cursor = await CatalogService(session, auth.organization_id).list_listings(
        channel_id, cursor=cursor, limit=limit
    )
    return Page(items=[_listing_read(*row) for row in rows], next_cursor=next_cursor)
