"""Shopify's order JSON (REST shape: the ``orders/*`` webhook body and the REST order resource)
mapped to Rappit's channel-neutral ``ChannelOrder``.

Facts this relies on (reference/channel-apis.md §4.1): ids are 64-bit integers (kept as
strings), money is strings, ``current_quantity`` is the quantity after edits, refunds and
removals (older payloads lack it: fall back to ``quantity``), ``fulfillable_quantity`` is what is
left to fulfil of it (``quantity - max(refunded, fulfilled) - pending - open``: what is current
but not fulfillable has been fulfilled in the channel), ``variant_id``/``product_id`` are
null for custom items and ``sku`` may be null or empty, ``customer`` is absent for guest and
some POS orders and its personal fields are null without protected-data access.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from rappit.models import PaymentStatus
from rappit.orders.inputs import ChannelOrder, ChannelOrderLine
from rappit.webhooks.processing import UnprocessablePayload

_PAYMENT_STATUS = {
    "pending": PaymentStatus.PENDING,
    "authorized": PaymentStatus.AUTHORIZED,
    "partially_paid": PaymentStatus.PARTIALLY_PAID,
    "paid": PaymentStatus.PAID,
    "partially_refunded": PaymentStatus.PARTIALLY_REFUNDED,
    "refunded": PaymentStatus.REFUNDED,
    "voided": PaymentStatus.VOIDED,
    "expired": PaymentStatus.EXPIRED,
}

_ADDRESS_FIELDS = (
    "first_name", "last_name", "name", "company", "address1", "address2", "city", "province",
    "province_code", "zip", "country", "country_code", "phone",
)  # fmt: skip
_CUSTOMER_FIELDS = ("id", "email", "first_name", "last_name", "phone")
# Kept on the order as they are: what a person may want to see, not what stock depends on.
_DETAIL_FIELDS = (
    "order_number", "number", "admin_graphql_api_id", "presentment_currency", "subtotal_price",
    "total_tax", "total_discounts", "total_price_set", "current_total_price",
    "current_subtotal_price", "current_total_tax", "total_shipping_price_set", "shipping_lines",
    "discount_codes", "discount_applications", "tax_lines", "taxes_included", "tags", "note",
    "note_attributes", "source_name", "cancel_reason", "email", "phone", "created_at",
    "processed_at", "closed_at",
)  # fmt: skip


class ShopifyPayloadError(UnprocessablePayload):
    """The payload lacks what an order must have; retrying the same payload cannot help."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _money(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ShopifyPayloadError(f"not an amount: {value!r}") from exc


def _timestamp(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ShopifyPayloadError(f"{field} is not an ISO 8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise ShopifyPayloadError(f"{field} has no UTC offset: {value!r}")
    return parsed


def _address(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {key: value.get(key) for key in _ADDRESS_FIELDS if value.get(key) is not None}


def _customer(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("id") is None:
        return None
    customer = {key: value.get(key) for key in _CUSTOMER_FIELDS if value.get(key) is not None}
    customer["id"] = str(value["id"])
    return customer


def _channel_fulfilled(current: int, fulfillable: Any) -> int:
    """Units of the current quantity Shopify no longer has to fulfil (shipped, or in a
    fulfilment under way): ``current - fulfillable_quantity``, within 0..current. An absent
    field says nothing: 0."""
    if fulfillable is None:
        return 0
    try:
        open_units = max(int(fulfillable), 0)
    except (TypeError, ValueError) as exc:
        raise ShopifyPayloadError(f"fulfillable_quantity is not a number: {fulfillable!r}") from exc
    return max(current - open_units, 0)


def map_line(line: dict[str, Any]) -> ChannelOrderLine:
    if line.get("id") is None:
        raise ShopifyPayloadError("a line item has no id")
    quantity = line.get("current_quantity")
    if quantity is None:
        quantity = line.get("quantity", 0)
    current = max(int(quantity), 0)
    return ChannelOrderLine(
        external_item_id=str(line["id"]),
        quantity=current,
        channel_fulfilled_quantity=_channel_fulfilled(current, line.get("fulfillable_quantity")),
        external_product_id=_text(line.get("product_id")),
        external_variant_id=_text(line.get("variant_id")),
        sku=_text(line.get("sku")),
        title=_text(line.get("name")) or _text(line.get("title")),
        price=_money(line.get("price")),
        requires_shipping=bool(line.get("requires_shipping", True)),
    )


def map_order(payload: dict[str, Any]) -> ChannelOrder:
    """Map one order. Raises ``ShopifyPayloadError`` for a payload no retry can fix."""
    if payload.get("id") is None:
        raise ShopifyPayloadError("the order has no id")
    updated_at = _timestamp(payload.get("updated_at"), "updated_at")
    if updated_at is None:
        raise ShopifyPayloadError("the order has no updated_at")
    status = str(payload.get("financial_status") or "pending").lower()
    details = {key: payload[key] for key in _DETAIL_FIELDS if key in payload}
    details["financial_status"] = status
    currency = _text(payload.get("currency"))
    try:
        return _build(payload, updated_at, status, details, currency)
    except ValidationError as exc:
        raise ShopifyPayloadError(f"order {payload['id']}: {exc}") from exc


def _build(
    payload: dict[str, Any],
    updated_at: datetime,
    status: str,
    details: dict[str, Any],
    currency: str | None,
) -> ChannelOrder:
    return ChannelOrder(
        external_order_id=str(payload["id"]),
        updated_at=updated_at,
        name=_text(payload.get("name")),
        payment_status=_PAYMENT_STATUS.get(status, PaymentStatus.PENDING),
        fulfillment_status=_text(payload.get("fulfillment_status")),
        cancelled_at=_timestamp(payload.get("cancelled_at"), "cancelled_at"),
        currency=currency.upper() if currency else None,
        total_price=_money(payload.get("total_price")),
        customer=_customer(payload.get("customer")),
        shipping_address=_address(payload.get("shipping_address")),
        billing_address=_address(payload.get("billing_address")),
        external_location_id=_text(payload.get("location_id")),
        is_test=bool(payload.get("test", False)),
        details=details,
        lines=[map_line(line) for line in payload.get("line_items") or []],
    )
