from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rappit.models import StockLevel

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$"


class WarehouseCreate(BaseModel):
    code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    priority: int = Field(default=100, ge=0, le=1_000_000)


class WarehouseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    priority: int
    created_at: datetime


class AdjustmentCreate(BaseModel):
    sku: str = Field(min_length=1, max_length=128, description="SKU code")
    warehouse: str = Field(min_length=1, max_length=64, description="Warehouse code")
    delta: int | None = Field(default=None, description="Change of on-hand units (+/-)")
    set: int | None = Field(default=None, ge=0, description="New absolute on-hand units")
    reason: str = Field(min_length=1, max_length=500)
    reference: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_of_delta_or_set(self) -> AdjustmentCreate:
        if (self.delta is None) == (self.set is None):
            raise ValueError("give exactly one of 'delta' or 'set'")
        if self.delta == 0:
            raise ValueError("'delta' must not be 0")
        return self


class StockLevelRead(BaseModel):
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int

    @classmethod
    def of(cls, level: StockLevel, *, sku_code: str, warehouse_code: str) -> StockLevelRead:
        return cls(
            sku=sku_code,
            warehouse=warehouse_code,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
        )


class MovementRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    sku_id: uuid.UUID
    warehouse_id: uuid.UUID
    on_hand_delta: int
    reserved_delta: int
    reason: str
    note: str | None
    reference: str | None
    order_id: uuid.UUID | None
    created_at: datetime
