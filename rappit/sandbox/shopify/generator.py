"""Deterministic shop data at scale: products with 1 to 3 variants, inventory levels per location,
customers and orders spread over time.

The same seed on a fresh ``SandboxState`` gives the same data, ids included. Objects are small
slotted dataclasses and JSON is rendered only when asked for, so 100,000 orders take about a
second or two. The orders look like a real shop's: mostly catalogue lines (some variants without
SKU), a few custom lines without variant, guest checkouts, every financial status, cancelled
orders, fulfilled and partially fulfilled orders (with their fulfilments) and archived ones.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from rappit.sandbox.shopify.state import (
    Address,
    Customer,
    Fulfillment,
    InventoryLevel,
    LineItem,
    Order,
    Product,
    SandboxState,
    Variant,
)

GENERATED_UNTIL = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
"""Default end of the generated time window (fixed, so a seed means the same data on any day)."""

_DAY = 86_400

_ADJECTIVES = [
    "Classic",
    "Organic",
    "Vintage",
    "Everyday",
    "Premium",
    "Recycled",
    "Slim",
    "Cozy",
    "Rugged",
    "Minimal",
    "Bold",
    "Soft",
    "Urban",
    "Alpine",
    "Coastal",
]
_MATERIALS = [
    "Cotton",
    "Linen",
    "Wool",
    "Leather",
    "Canvas",
    "Bamboo",
    "Ceramic",
    "Steel",
    "Oak",
    "Denim",
]
_NOUNS = [
    ("T-Shirt", "Apparel", "TS"),
    ("Hoodie", "Apparel", "HD"),
    ("Mug", "Kitchen", "MG"),
    ("Backpack", "Bags", "BP"),
    ("Sneaker", "Shoes", "SN"),
    ("Cap", "Accessories", "CP"),
    ("Scarf", "Accessories", "SC"),
    ("Notebook", "Stationery", "NB"),
    ("Water Bottle", "Kitchen", "WB"),
    ("Tote Bag", "Bags", "TB"),
    ("Socks", "Apparel", "SK"),
    ("Blanket", "Home", "BL"),
]
_VENDORS = ["Acme", "Northwind", "Globex", "Initech", "Umbrella Goods", "Stark Supply"]
_OPTIONS = [("Size", ["S", "M", "L"]), ("Color", ["Black", "White", "Blue"])]
_CUSTOM_LINES = [("Gift wrapping", 350), ("Custom engraving", 900), ("Express handling", 500)]
_FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Edsger",
    "Barbara",
    "Ken",
    "Frances",
    "Donald",
    "Hedy",
    "Niklaus",
    "Radia",
    "Tim",
    "Katherine",
    "Dennis",
    "Anita",
    "Guido",
    "Sophie",
    "Lena",
    "Jonas",
    "Mia",
    "Emil",
    "Clara",
]
_LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Allen",
    "Knuth",
    "Lamarr",
    "Wirth",
    "Perlman",
    "Berners-Lee",
    "Johnson",
    "Ritchie",
    "Borg",
    "Rossum",
    "Wilson",
    "Schmidt",
    "Fischer",
    "Weber",
    "Wagner",
]
_CITIES = [
    ("Berlin", "10115", "Germany", "DE", None, None),
    ("Hamburg", "20095", "Germany", "DE", None, None),
    ("Munich", "80331", "Germany", "DE", None, None),
    ("Cologne", "50667", "Germany", "DE", None, None),
    ("Vienna", "1010", "Austria", "AT", None, None),
    ("Zurich", "8001", "Switzerland", "CH", "Zürich", "ZH"),
    ("Amsterdam", "1012", "Netherlands", "NL", None, None),
    ("New York", "10001", "United States", "US", "New York", "NY"),
]
_STREETS = [
    "Hauptstrasse",
    "Bahnhofstrasse",
    "Gartenweg",
    "Lindenallee",
    "Schillerplatz",
    "Main Street",
    "Kerkstraat",
    "Ringstrasse",
]
_FINANCIAL = (
    ["paid"] * 70
    + ["pending"] * 10
    + ["authorized"] * 8
    + ["partially_paid"] * 3
    + ["partially_refunded"] * 4
    + ["refunded"] * 3
    + ["voided"] * 2
)
_CANCEL_REASONS = ["customer", "customer", "fraud", "inventory", "declined", "staff", "other"]
_TAGS = ["", "", "", "", "vip", "wholesale", "gift", "vip, gift", "repeat"]
_LINE_COUNTS = [1] * 55 + [2] * 25 + [3] * 12 + [4] * 8
_QUANTITIES = [1] * 75 + [2] * 17 + [3] * 8


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    products: int
    variants: int
    inventory_levels: int
    customers: int
    orders: int
    line_items: int
    fulfillments: int


def generate(
    state: SandboxState,
    shop_domain: str,
    *,
    products: int,
    orders: int,
    seed: int,
    until: int | None = None,
    days: int = 90,
) -> GenerationSummary:
    """Add ``products`` products and ``orders`` orders to the shop.

    Orders are created over the ``days`` before ``until`` (epoch seconds; default
    ``GENERATED_UNTIL``) and last updated at most ``until``. Generating does not fire webhooks.
    """
    # Hundreds of thousands of new objects and no cycles among them: the cyclic collector
    # would only rescan the growing heap again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _generate(state, shop_domain, products, orders, seed, until, days)
    finally:
        if collecting:
            gc.enable()


def _generate(
    state: SandboxState,
    shop_domain: str,
    products: int,
    orders: int,
    seed: int,
    until: int | None,
    days: int,
) -> GenerationSummary:
    shop = state.shop(shop_domain)
    rng = random.Random(seed)
    until = GENERATED_UNTIL if until is None else until
    start = until - days * _DAY
    locations = sorted(shop.locations)

    # products, variants, inventory levels ---------------------------------------------------
    variant_count = 0
    level_count = 0
    for product_id in state.ids.block("product", products):
        index = len(shop.products)
        noun, product_type, code = _NOUNS[rng.randrange(len(_NOUNS))]
        title = (
            f"{_ADJECTIVES[rng.randrange(len(_ADJECTIVES))]} "
            f"{_MATERIALS[rng.randrange(len(_MATERIALS))]} {noun}"
        )
        created = start - rng.randrange(365 * _DAY)
        updated = created + rng.randrange(min(until - created, 120 * _DAY))
        count = rng.choice((1, 1, 1, 2, 2, 3))
        option_name, values = _OPTIONS[rng.randrange(2)] if count > 1 else (None, [])
        price = rng.randrange(4, 120) * 100 + 90
        variants: list[Variant] = []
        for position in range(1, count + 1):
            value = values[position - 1] if option_name else None
            sku: str | None = f"{code}-{index + 1:05d}" + (f"-{value.upper()}" if value else "")
            if (variant_count + position) % 40 == 7:
                sku = None  # merchants leave some SKUs empty (one variant in 40)
            variants.append(
                Variant(
                    id=state.ids.next("variant"),
                    product_id=product_id,
                    title=value or "Default Title",
                    sku=sku,
                    price_cents=price + (position - 1) * 200,
                    position=position,
                    inventory_item_id=state.ids.next("inventory_item"),
                    grams=rng.randrange(50, 1500, 10),
                    option1=value or "Default Title",
                    created_at=created,
                    updated_at=updated,
                    barcode=f"40{rng.randrange(10**10, 10**11)}" if rng.random() < 0.7 else None,
                )
            )
        shop.add_product(
            Product(
                id=product_id,
                title=title,
                handle=f"{title.lower().replace(' ', '-')}-{index + 1}",
                vendor=_VENDORS[rng.randrange(len(_VENDORS))],
                product_type=product_type,
                tags=_TAGS[rng.randrange(len(_TAGS))],
                created_at=created,
                updated_at=updated,
                variants=variants,
                option_name=option_name,
            )
        )
        variant_count += count
        for variant in variants:
            for position, location_id in enumerate(locations):
                if rng.random() < (0.95 if position == 0 else 0.6):
                    shop.add_level(
                        InventoryLevel(
                            variant.inventory_item_id, location_id, rng.randrange(0, 120), updated
                        )
                    )
                    level_count += 1

    # customers --------------------------------------------------------------------------------
    new_customers = max(1, min(orders // 3, 20_000)) if orders else 0
    for _ in range(new_customers):
        first = _FIRST[rng.randrange(len(_FIRST))]
        last = _LAST[rng.randrange(len(_LAST))]
        city, zip_code, country, country_code, province, province_code = _CITIES[
            rng.randrange(len(_CITIES))
        ]
        number = len(shop.customers) + 1
        shop.customers.append(
            Customer(
                id=state.ids.next("customer"),
                first_name=first,
                last_name=last,
                email=f"{first.lower()}.{last.lower().replace('-', '')}{number}@example.com",
                phone=f"+49 30 {rng.randrange(1000000, 9999999)}" if rng.random() < 0.4 else None,
                address=Address(
                    first_name=first,
                    last_name=last,
                    address1=f"{_STREETS[rng.randrange(len(_STREETS))]} {rng.randrange(1, 120)}",
                    city=city,
                    zip=zip_code,
                    province=province,
                    province_code=province_code,
                    country=country,
                    country_code=country_code,
                ),
                created_at=start - rng.randrange(365 * _DAY),
            )
        )

    # orders ---------------------------------------------------------------------------------
    all_variants = [variant for product in shop.products.values() for variant in product.variants]
    if orders and not all_variants:
        raise ValueError("orders need products: generate some products first")
    customers = shop.customers
    primary = locations[0] if locations else None
    secondary = locations[1] if len(locations) > 1 else primary
    created_times = sorted(start + int(rng.random() * (until - start)) for _ in range(orders))
    generated: list[Order] = []
    line_total = 0
    fulfillment_total = 0
    random_ = rng.random

    def randrange(low: int, high: int | None = None) -> int:
        # ten times faster than Random.randrange, and just as deterministic
        if high is None:
            return int(random_() * low)
        return low + int(random_() * (high - low))

    next_id = state.ids.next
    # Catalogue lines, flattened once: (variant, product, sku, title, variant title, vendor,
    # price, grams, inventory item).
    templates = [
        (
            variant.id,
            variant.product_id,
            variant.sku,
            shop.products[variant.product_id].title,
            None if variant.title == "Default Title" else variant.title,
            shop.products[variant.product_id].vendor,
            variant.price_cents,
            variant.grams,
            variant.inventory_item_id,
        )
        for variant in all_variants
    ]
    template_count = len(templates)
    custom_count = len(_CUSTOM_LINES)
    # At most 4 lines an order: one block of ids, the unused ones simply never appear.
    line_ids = iter(state.ids.block("line_item", 4 * orders))
    for created in created_times:
        number = shop.next_order_number
        shop.next_order_number += 1
        lines: list[LineItem] = []
        for _ in range(_LINE_COUNTS[int(random_() * 100)]):
            quantity = _QUANTITIES[int(random_() * 100)]
            if random_() < 0.04:
                title, price = _CUSTOM_LINES[int(random_() * custom_count)]
                lines.append(
                    LineItem(
                        next(line_ids),
                        None,
                        None,
                        None,
                        title,
                        None,
                        None,
                        quantity,
                        price,
                        0,
                        quantity,
                        0,
                        False,
                    )
                )
                continue
            v_id, p_id, sku, title, v_title, vendor, price, grams, item = templates[
                int(random_() * template_count)
            ]
            lines.append(
                LineItem(
                    next(line_ids),
                    v_id,
                    p_id,
                    sku,
                    title,
                    v_title,
                    vendor,
                    quantity,
                    price,
                    grams,
                    quantity,
                    0,
                    True,
                    item,
                )
            )
        line_total += len(lines)
        financial = _FINANCIAL[randrange(100)]
        buyer = customers[randrange(len(customers))] if random_() < 0.85 else None
        address = buyer.address if buyer else customers[randrange(len(customers))].address
        order = Order(
            id=next_id("order", gap=randrange(1, 4000)),
            number=number,
            created_at=created,
            updated_at=created + randrange(1, 120),
            processed_at=created,
            financial_status=financial,
            currency=shop.currency,
            customer=buyer,
            email=buyer.email if buyer else f"guest{number}@example.com",
            address=address,
            line_items=lines,
            location_id=primary if random_() < 0.8 else secondary,
            shipping_cents=(0, 490, 490, 690, 990)[randrange(5)],
            tags=_TAGS[randrange(len(_TAGS))],
            test=random_() < 0.01,
            source_name="web" if random_() < 0.9 else "pos",
        )
        age = until - created
        roll = random_()
        if roll < 0.04:  # cancelled
            order.cancelled_at = min(until, created + randrange(600, 2 * _DAY))
            order.closed_at = order.cancelled_at
            order.updated_at = order.cancelled_at
            order.cancel_reason = _CANCEL_REASONS[randrange(len(_CANCEL_REASONS))]
            order.financial_status = (
                "voided"
                if financial in ("pending", "authorized")
                else ("refunded" if financial == "paid" else financial)
            )
        elif financial == "paid" and age > 3 * _DAY and roll < 0.70:  # shipped
            shipped = min(until, created + randrange(3600, 3 * _DAY))
            partial = roll < 0.10 and any(line.requires_shipping for line in lines[1:])
            quantities: dict[int, int] = {}
            for position, line in enumerate(lines):
                if partial and position > 0:
                    continue
                line.fulfilled_quantity = line.quantity
                quantities[line.id] = line.quantity
            fulfillment = Fulfillment(
                id=next_id("fulfillment"),
                order_id=order.id,
                location_id=order.location_id or 0,
                name=f"#{1000 + number}.1",
                created_at=shipped,
                updated_at=shipped,
                quantities=quantities,
                tracking_company="DHL Express" if random_() < 0.6 else "FedEx",
                tracking_numbers=[f"JD{randrange(10**15, 10**16)}"],
            )
            shop.fulfillments[fulfillment.id] = fulfillment
            order.fulfillment_ids.append(fulfillment.id)
            fulfillment_total += 1
            order.updated_at = shipped
            if not partial and age > 30 * _DAY and random_() < 0.5:
                order.closed_at = shipped + randrange(_DAY, 10 * _DAY)
                order.updated_at = order.closed_at
        elif roll < 0.80:  # touched later: a note, a tag, a payment capture
            order.updated_at = created + randrange(60, 5 * _DAY)
        order.updated_at = min(order.updated_at, until)
        if order.closed_at is not None:
            order.closed_at = min(order.closed_at, until)
        generated.append(order)
    shop.add_orders(generated)
    return GenerationSummary(
        products=products,
        variants=variant_count,
        inventory_levels=level_count,
        customers=new_customers,
        orders=orders,
        line_items=line_total,
        fulfillments=fulfillment_total,
    )
