"""Shopify order JSON → ChannelOrder, on realistic payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from rappit.integrations.shopify.orders import ShopifyPayloadError, map_order
from rappit.models import PaymentStatus
from tests.integrations.shopify.payloads import edited, line_item, order


def test_a_paid_order_with_two_lines() -> None:
    mapped = map_order(order())

    assert mapped.external_order_id == "5940139491234"
    assert mapped.name == "#1001"
    assert mapped.updated_at == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    assert mapped.payment_status is PaymentStatus.PAID
    assert (mapped.currency, mapped.total_price) == ("EUR", Decimal("49.30"))
    assert mapped.customer == {
        "id": "7001",
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    assert mapped.shipping_address is not None
    assert mapped.shipping_address["city"] == "Berlin"
    assert mapped.cancelled_at is None
    assert mapped.is_test is False
    assert [
        (
            ln.external_item_id,
            ln.external_variant_id,
            ln.external_product_id,
            ln.sku,
            ln.quantity,
            ln.price,
        )
        for ln in mapped.lines
    ] == [
        ("11001", "44001", "8001", "TSHIRT-M", 2, Decimal("19.90")),
        ("11002", "44002", "8002", "MUG", 1, Decimal("9.50")),
    ]
    assert mapped.lines[0].title == "T-Shirt - M / Blue"
    assert mapped.details["order_number"] == 1001
    assert mapped.details["tags"] == "vip, gift"
    assert mapped.details["shipping_lines"] == [
        {"code": "Standard", "title": "Standard", "price": "4.90"}
    ]


def test_custom_line_without_variant_and_null_or_empty_sku() -> None:
    mapped = map_order(
        order(
            lines=[
                line_item(1, sku=None, quantity=1, title="Gift wrapping"),
                line_item(2, sku="", quantity=3, variant_id=9, product_id=8),
                line_item(3, sku="  SPACED  ", quantity=1, variant_id=10),
            ]
        )
    )
    assert [(ln.external_variant_id, ln.external_product_id, ln.sku) for ln in mapped.lines] == [
        (None, None, None),
        ("9", "8", None),
        ("10", None, "SPACED"),
    ]


def test_guest_checkout_has_no_customer() -> None:
    mapped = map_order(order(customer=False))
    assert mapped.customer is None
    assert mapped.details["email"] is None


def test_multi_currency_keeps_both_currencies() -> None:
    mapped = map_order(order(currency="EUR", presentment_currency="USD"))
    assert mapped.currency == "EUR"
    assert mapped.details["presentment_currency"] == "USD"
    assert mapped.details["total_price_set"]["presentment_money"] == {
        "amount": "53.10",
        "currency_code": "USD",
    }


def test_test_order_and_cancellation() -> None:
    mapped = map_order(order(test=True, cancelled_at="2026-03-02T09:00:00Z"))
    assert mapped.is_test is True
    assert mapped.cancelled_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert mapped.details["cancel_reason"] == "customer"


def test_an_edited_order_uses_current_quantity() -> None:
    mapped = map_order(
        edited(order(), updated_at="2026-03-01T13:00:00+01:00", **{"11001": 1, "11002": 0})
    )
    assert [(ln.external_item_id, ln.quantity) for ln in mapped.lines] == [
        ("11001", 1),
        ("11002", 0),
    ]


def test_older_payloads_without_current_quantity_use_quantity() -> None:
    payload = order()
    for line in payload["line_items"]:
        del line["current_quantity"]
    assert [ln.quantity for ln in map_order(payload).lines] == [2, 1]


@pytest.mark.parametrize(
    ("current", "fulfillable", "expected"),
    [
        (3, 3, 0),  # nothing shipped
        (3, 1, 2),  # two of three shipped (or in a fulfilment under way)
        (3, 0, 3),  # all shipped
        (2, 3, 0),  # fulfillable above current (an edit lowered it): nothing shipped
        (1, -1, 1),  # a negative count is none left to fulfil
        (0, 0, 0),  # the line is gone
    ],
)
def test_units_shopify_no_longer_has_to_fulfil_are_channel_fulfilled(
    current: int, fulfillable: int, expected: int
) -> None:
    payload = order(lines=[line_item(1, sku="A", quantity=3, current_quantity=current)])
    payload["line_items"][0]["fulfillable_quantity"] = fulfillable
    (line,) = map_order(payload).lines
    assert (line.quantity, line.channel_fulfilled_quantity) == (current, expected)


def test_a_payload_without_fulfillable_quantity_reports_nothing_fulfilled() -> None:
    payload = order()
    for line in payload["line_items"]:
        del line["fulfillable_quantity"]
    assert [ln.channel_fulfilled_quantity for ln in map_order(payload).lines] == [0, 0]


def test_a_fulfillable_quantity_that_is_no_number_is_refused() -> None:
    payload = order()
    payload["line_items"][0]["fulfillable_quantity"] = "two"
    with pytest.raises(ShopifyPayloadError, match="fulfillable_quantity is not a number: 'two'"):
        map_order(payload)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", PaymentStatus.PENDING),
        ("authorized", PaymentStatus.AUTHORIZED),
        ("partially_paid", PaymentStatus.PARTIALLY_PAID),
        ("partially_refunded", PaymentStatus.PARTIALLY_REFUNDED),
        ("refunded", PaymentStatus.REFUNDED),
        ("voided", PaymentStatus.VOIDED),
        ("EXPIRED", PaymentStatus.EXPIRED),
        ("something_new", PaymentStatus.PENDING),
    ],
)
def test_financial_status(status: str, expected: PaymentStatus) -> None:
    assert map_order(order(financial_status=status)).payment_status is expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "has no id"),
        ({"updated_at": None}, "no updated_at"),
        ({"updated_at": "yesterday"}, "not an ISO 8601 time"),
        ({"updated_at": "2026-03-01T12:00:00"}, "no UTC offset"),
        ({"total_price": "lots"}, "not an amount"),
        ({"line_items": [{"quantity": 1}]}, "line item has no id"),
        ({"id": "9" * 65}, "external_order_id\n  String should have at most 64 characters"),
        ({"line_items": [{"id": "", "quantity": 1}]}, "String should have at least 1 character"),
        ({"currency": "EURO"}, "currency\n  String should have at most 3 characters"),
    ],
)
def test_broken_payloads_are_refused(change: dict[str, object], message: str) -> None:
    payload = order()
    payload.update(change)
    with pytest.raises(ShopifyPayloadError, match=message):
        map_order(payload)
