"""Shopify order payloads written from the documented REST order schema (the ``orders/*``
webhook body): several lines, a custom line without variant, a null SKU, a guest checkout,
multi-currency, a test order and an edited order."""

from __future__ import annotations

import copy
from typing import Any

SHOP = "acme-store.myshopify.com"


def address(city: str = "Berlin", country_code: str = "DE") -> dict[str, Any]:
    return {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "name": "Ada Lovelace",
        "company": None,
        "address1": "Unter den Linden 1",
        "address2": "",
        "city": city,
        "province": None,
        "province_code": None,
        "zip": "10117",
        "country": "Germany",
        "country_code": country_code,
        "phone": "+49 30 123456",
        "latitude": 52.5,
        "longitude": 13.4,
    }


def line_item(
    line_id: int,
    *,
    sku: str | None,
    quantity: int,
    variant_id: int | None = None,
    product_id: int | None = None,
    price: str = "19.90",
    current_quantity: int | None = None,
    title: str = "T-Shirt",
    fulfilled: int = 0,
) -> dict[str, Any]:
    """A line; ``fulfilled`` of its current units shipped in Shopify (``fulfillable_quantity``
    is the rest, as Shopify computes it)."""
    current = quantity if current_quantity is None else current_quantity
    return {
        "id": line_id,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
        "variant_id": variant_id,
        "product_id": product_id,
        "sku": sku,
        "title": title,
        "variant_title": "M / Blue" if variant_id else None,
        "name": f"{title} - M / Blue" if variant_id else title,
        "vendor": "Acme",
        "quantity": quantity,
        "current_quantity": current,
        "fulfillable_quantity": max(current - fulfilled, 0),
        "fulfillment_status": line_fulfillment_status(current, fulfilled),
        "fulfillment_service": "manual",
        "requires_shipping": True,
        "grams": 200,
        "price": price,
        "price_set": {
            "shop_money": {"amount": price, "currency_code": "EUR"},
            "presentment_money": {"amount": price, "currency_code": "EUR"},
        },
        "total_discount": "0.00",
        "discount_allocations": [],
        "tax_lines": [{"title": "MwSt", "rate": 0.19, "price": "3.18"}],
        "properties": [],
        "gift_card": False,
        "taxable": True,
    }


def order(
    order_id: int = 5_940_139_491_234,
    *,
    updated_at: str = "2026-03-01T12:00:00+01:00",
    financial_status: str = "paid",
    cancelled_at: str | None = None,
    lines: list[dict[str, Any]] | None = None,
    customer: bool = True,
    currency: str = "EUR",
    presentment_currency: str | None = None,
    test: bool = False,
    location_id: int | None = None,
) -> dict[str, Any]:
    lines = lines if lines is not None else [
        line_item(11_001, sku="TSHIRT-M", quantity=2, variant_id=44_001, product_id=8_001),
        line_item(11_002, sku="MUG", quantity=1, variant_id=44_002, product_id=8_002, price="9.50"),
    ]  # fmt: skip
    payload: dict[str, Any] = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": "#1001",
        "order_number": 1001,
        "number": 1,
        "email": "ada@example.com" if customer else None,
        "phone": None,
        "created_at": "2026-03-01T11:59:00+01:00",
        "updated_at": updated_at,
        "processed_at": "2026-03-01T11:59:00+01:00",
        "closed_at": None,
        "cancelled_at": cancelled_at,
        "cancel_reason": "customer" if cancelled_at else None,
        "currency": currency,
        "presentment_currency": presentment_currency or currency,
        "total_price": "49.30",
        "subtotal_price": "49.30",
        "total_tax": "7.87",
        "total_discounts": "0.00",
        "current_total_price": "49.30",
        "total_price_set": {
            "shop_money": {"amount": "49.30", "currency_code": currency},
            "presentment_money": {
                "amount": "53.10" if presentment_currency else "49.30",
                "currency_code": presentment_currency or currency,
            },
        },
        "financial_status": financial_status,
        "fulfillment_status": None,
        "test": test,
        "tags": "vip, gift",
        "note": "Leave at the door",
        "note_attributes": [],
        "source_name": "web",
        "location_id": location_id,
        "taxes_included": True,
        "shipping_lines": [{"code": "Standard", "title": "Standard", "price": "4.90"}],
        "discount_codes": [],
        "tax_lines": [{"title": "MwSt", "rate": 0.19, "price": "7.87"}],
        "billing_address": address(),
        "shipping_address": address(),
        "customer": (
            {
                "id": 7_001,
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "phone": None,
                "default_address": address(),
            }
            if customer
            else None
        ),
        "line_items": lines,
        "fulfillments": [],
        "refunds": [],
    }
    if not customer:
        del payload["customer"]
    return payload


def line_fulfillment_status(current: int, fulfilled: int) -> str | None:
    if fulfilled == 0:
        return None
    return "fulfilled" if fulfilled >= current else "partial"


def set_current(line: dict[str, Any], current: int) -> None:
    """An order edit of one line: the units still ordered change, and so do the units left
    to fulfil (the ones already shipped stay shipped)."""
    fulfilled = line["current_quantity"] - line["fulfillable_quantity"]
    line["current_quantity"] = current
    line["fulfillable_quantity"] = max(current - fulfilled, 0)


def set_fulfilled(line: dict[str, Any], fulfilled: int) -> None:
    """``fulfilled`` units of the line shipped in Shopify (by anyone)."""
    line["fulfillable_quantity"] = max(line["current_quantity"] - fulfilled, 0)
    line["fulfillment_status"] = line_fulfillment_status(line["current_quantity"], fulfilled)


def edited(payload: dict[str, Any], *, updated_at: str, **current: int) -> dict[str, Any]:
    """The same order after an order edit: ``current_quantity`` per line id (as str)."""
    result = copy.deepcopy(payload)
    result["updated_at"] = updated_at
    for line in result["line_items"]:
        if str(line["id"]) in current:
            set_current(line, current[str(line["id"])])
    return result
