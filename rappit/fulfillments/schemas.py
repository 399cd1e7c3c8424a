from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, HttpUrl, StringConstraints

from rappit.fulfillments.service import Tracking

MAX_ITEMS = 250

TrackingNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)
]
Company = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class TrackingInput(BaseModel):
    number: TrackingNumber | None = None
    # Shopify's spelling of the carrier (e.g. "DHL Express", "FedEx") lets it build the URL.
    company: Company | None = None
    url: HttpUrl | None = Field(default=None, max_length=1000)

    def to_tracking(self) -> Tracking:
        return Tracking(
            number=self.number, company=self.company, url=str(self.url) if self.url else None
        )


class FulfillmentItemInput(BaseModel):
    order_item_id: uuid.UUID
    quantity: int = Field(gt=0)


class FulfillmentCreate(BaseModel):
    items: list[FulfillmentItemInput] = Field(min_length=1, max_length=MAX_ITEMS)
    tracking: TrackingInput | None = None
    notify_customer: bool = False


class FulfillmentUpdate(BaseModel):
    tracking: TrackingInput
    notify_customer: bool | None = None


class TrackingRead(BaseModel):
    number: str | None
    company: str | None
    url: str | None


class FulfillmentItemRead(BaseModel):
    order_item_id: uuid.UUID
    external_item_id: str
    quantity: int


class FulfillmentRead(BaseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    external_fulfillment_id: str | None
    status: str
    tracking: TrackingRead
    notify_customer: bool
    items: list[FulfillmentItemRead]
    # Writing it back to the channel: null for fulfilments the channel reported itself;
    # "pending", "synced" or "failed" (with the reason in sync_error) for Rappit's own.
    sync_status: str | None
    sync_error: str | None
    created_at: datetime
    updated_at: datetime
