"""The channel-neutral shape of an order, as every integration hands it to the orders service.

Integrations map their payloads (Shopify webhooks and polls, WooCommerce, ...) to this; the
service never sees a vendor format.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rappit.models import PaymentStatus


class ChannelOrderLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    external_item_id: str = Field(min_length=1, max_length=64)
    # Current quantity after edits, refunds and removals; 0 means the line is gone.
    quantity: int = Field(ge=0)
    # Units of ``quantity`` the channel reports as already fulfilled (shipped outside Rappit,
    # or before Rappit was connected): they left the warehouse, so no stock is held for them.
    # 0 when the channel does not say.
    channel_fulfilled_quantity: int = Field(default=0, ge=0)
    external_product_id: str | None = None
    external_variant_id: str | None = None
    sku: str | None = None
    title: str | None = None
    price: Decimal | None = None
    requires_shipping: bool = True


class ChannelOrder(BaseModel):
    model_config = ConfigDict(frozen=True)

    external_order_id: str = Field(min_length=1, max_length=64)
    # The channel's own last-modified time: decides which of two versions is newer.
    updated_at: AwareDatetime
    name: str | None = None
    payment_status: PaymentStatus = PaymentStatus.PENDING
    fulfillment_status: str | None = None
    cancelled_at: AwareDatetime | None = None
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    total_price: Decimal | None = None
    customer: dict[str, Any] | None = None
    shipping_address: dict[str, Any] | None = None
    billing_address: dict[str, Any] | None = None
    external_location_id: str | None = None
    is_test: bool = False
    details: dict[str, Any] = Field(default_factory=dict)
    lines: list[ChannelOrderLine] = Field(default_factory=list)

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None
