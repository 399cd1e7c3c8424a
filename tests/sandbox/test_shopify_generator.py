"""Generated shop data: deterministic for a seed, realistic in shape, and cheap at 100,000
orders."""

from __future__ import annotations

from collections import Counter

import pytest

from rappit.sandbox.shopify import GENERATED_UNTIL, SandboxState, generate
from rappit.sandbox.shopify.payloads import order_json, product_json

DOMAIN = "gen.myshopify.com"


def _generated(seed: int, *, products: int = 40, orders: int = 400) -> SandboxState:
    state = SandboxState()
    state.create_shop(DOMAIN)
    generate(state, DOMAIN, products=products, orders=orders, seed=seed)
    return state


def _rendered(state: SandboxState) -> tuple[list[object], list[object]]:
    shop = state.shops[DOMAIN]
    return (
        [product_json(shop, product) for product in shop.products.values()],
        [order_json(shop, order) for order in shop.orders.values()],
    )


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = _rendered(_generated(5))
    assert first == _rendered(_generated(5))
    other = _rendered(_generated(6))
    assert other[1] != first[1]
    assert [o["line_items"] for o in other[1]] != [o["line_items"] for o in first[1]]  # type: ignore[index]


def test_generated_orders_look_like_a_shop() -> None:
    state = _generated(3, products=50, orders=2000)
    shop = state.shops[DOMAIN]
    orders = list(shop.orders.values())
    lines = [line for order in orders for line in order.line_items]
    assert all(
        GENERATED_UNTIL - 90 * 86_400 <= o.created_at <= o.updated_at <= GENERATED_UNTIL
        for o in orders
    )
    assert len({o.updated_at for o in orders}) > 1900  # spread over time
    assert [o.number for o in orders] == list(range(1, 2001))
    assert len({o.id for o in orders}) == 2000
    custom = [line for line in lines if line.variant_id is None]
    assert custom
    assert all(line.sku is None and line.product_id is None for line in custom)
    catalogue = [line for line in lines if line.variant_id is not None]
    for line in catalogue:
        variant = shop.variants[line.variant_id]  # type: ignore[index]
        assert (line.sku, line.product_id) == (variant.sku, variant.product_id)
    assert any(line.sku is None for line in catalogue)  # variants without SKU
    statuses = Counter(o.financial_status for o in orders)
    assert set(statuses) >= {
        "paid",
        "pending",
        "authorized",
        "partially_paid",
        "partially_refunded",
        "refunded",
        "voided",
    }
    assert 0.02 < sum(o.cancelled_at is not None for o in orders) / 2000 < 0.08
    fulfilment = Counter(o.fulfillment_status for o in orders)
    assert fulfilment[None]
    assert fulfilment["fulfilled"]
    assert fulfilment["partial"]
    assert any(o.customer is None for o in orders)
    assert any(o.customer for o in orders)
    assert all(len(p.variants) in (1, 2, 3) for p in shop.products.values())
    assert shop.levels
    assert all(key[0] in shop.variants_by_item for key in shop.levels)


def test_generating_needs_products_for_orders() -> None:
    state = SandboxState()
    state.create_shop(DOMAIN)
    with pytest.raises(ValueError, match="products"):
        generate(state, DOMAIN, products=0, orders=10, seed=1)


def test_one_hundred_thousand_orders() -> None:
    state = SandboxState()
    state.create_shop(DOMAIN)
    summary = generate(state, DOMAIN, products=5000, orders=100_000, seed=1)
    shop = state.shops[DOMAIN]
    assert (summary.orders, len(shop.orders), len(shop.products)) == (100_000, 100_000, 5000)
    assert len(shop.orders_by_updated) == len(shop.order_ids) == 100_000
    assert shop.orders_by_updated == sorted(shop.orders_by_updated)
    assert summary.line_items == sum(len(o.line_items) for o in shop.orders.values())
    assert 5000 <= summary.variants <= 15000
