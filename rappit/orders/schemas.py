from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class OrderSummary(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    external_order_id: str
    name: str | None
    status: str
    payment_status: str
    currency: str | None
    total_price: str | None
    created_at: datetime
    updated_at: datetime


class OrderItemRead(BaseModel):
    id: uuid.UUID
    external_item_id: str
    external_variant_id: str | None
    sku: str | None
    sku_id: uuid.UUID | None
    title: str | None
    quantity: int
    # Units Rappit recorded as fulfilled (its own fulfilments and the channel's it received).
    fulfilled_quantity: int
    # Units the channel reports as no longer to fulfil (shipped there, perhaps not recorded yet).
    channel_fulfilled_quantity: int
    # Units still to ship: what a new fulfilment may take.
    open_quantity: int
    reserved_quantity: int
    price: str | None


class ReservationRead(BaseModel):
    id: uuid.UUID
    order_item_id: uuid.UUID
    sku: str
    warehouse: str
    quantity: int
    created_at: datetime
    released_at: datetime | None
    consumed_at: datetime | None


class MovementRead(BaseModel):
    sku: str
    warehouse: str
    on_hand_delta: int
    reserved_delta: int
    reason: str
    created_at: datetime


class FulfillmentRead(BaseModel):
    id: uuid.UUID
    external_fulfillment_id: str | None
    status: str
    tracking_number: str | None
    tracking_company: str | None
    tracking_url: str | None
    items: list[dict[str, Any]]
    created_at: datetime


class OrderDetail(OrderSummary):
    fulfillment_status: str | None
    customer: dict[str, Any] | None
    shipping_address: dict[str, Any] | None
    billing_address: dict[str, Any] | None
    external_location_id: str | None
    channel_updated_at: datetime | None
    cancelled_at: datetime | None
    is_test: bool
    details: dict[str, Any]
    items: list[OrderItemRead]
    reservations: list[ReservationRead]
    ledger: list[MovementRead]
    fulfillments: list[FulfillmentRead]
