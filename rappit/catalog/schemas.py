from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Codes are compared exactly (case matters) once surrounding whitespace is removed; channels
# send SKU codes as free text, so no narrower alphabet is imposed.
SkuCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

MAX_SKUS_PER_PRODUCT = 250


class SkuCreate(BaseModel):
    code: SkuCode
    title: Title | None = None


class ProductCreate(BaseModel):
    title: Title
    skus: list[SkuCreate] = Field(default_factory=list, max_length=MAX_SKUS_PER_PRODUCT)


class ProductSkuRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    title: str | None


class ProductRead(BaseModel):
    id: uuid.UUID
    title: str
    skus: list[ProductSkuRead]
    created_at: datetime


class SkuRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    title: str | None
    product_id: uuid.UUID


class ListingCreate(BaseModel):
    # Shopify sends numeric ids; they are kept as text like every external id.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    sku: SkuCode = Field(description="SKU code")
    external_product_id: ExternalId | None = None
    external_variant_id: ExternalId | None = None
    external_inventory_item_id: ExternalId | None = None

    @model_validator(mode="after")
    def _some_external_id(self) -> ListingCreate:
        if (
            self.external_product_id is None
            and self.external_variant_id is None
            and self.external_inventory_item_id is None
        ):
            raise ValueError(
                "give at least one of 'external_product_id', 'external_variant_id' or "
                "'external_inventory_item_id'"
            )
        return self


class ListingRead(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    sku: str
    external_product_id: str | None
    external_variant_id: str | None
    external_inventory_item_id: str | None
