"""REST JSON of the simulated resources: what ``/admin/api/{version}/*.json`` returns and what
the webhooks carry (the ``orders/*`` body is the REST order; reference/channel-apis.md §4.1).

Money is a string with two decimals, times are ISO 8601 in the shop's UTC offset with second
precision, ids are integers and ``admin_graphql_api_id`` is the GID.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rappit.sandbox.shopify.state import (
    Address,
    Customer,
    Fulfillment,
    FulfillmentOrder,
    InventoryLevel,
    LineItem,
    Location,
    Order,
    OrderEdit,
    Product,
    SandboxState,
    Shop,
    Variant,
    WebhookSubscription,
)

TAX_RATE_PERCENT = 19  # prices include tax, as in most European shops

_TRACKING_URLS = {
    "DHL Express": "https://www.dhl.com/en/express/tracking.html?AWB={}&brand=DHL",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr={}",
    "UPS": "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums={}",
}


def gid(kind: str, id: int) -> str:
    return f"gid://shopify/{kind}/{id}"


def iso(timestamp: int | None, offset_minutes: int) -> str | None:
    if timestamp is None:
        return None
    local = time.gmtime(timestamp + offset_minutes * 60)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f"{sign}{hours:02d}:{minutes:02d}"


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def money_set(cents: int, currency: str) -> dict[str, Any]:
    amount = money(cents)
    return {
        "shop_money": {"amount": amount, "currency_code": currency},
        "presentment_money": {"amount": amount, "currency_code": currency},
    }


def included_tax(gross_cents: int) -> int:
    return gross_cents - round(gross_cents * 100 / (100 + TAX_RATE_PERCENT))


def tracking_url(company: str | None, number: str) -> str | None:
    template = _TRACKING_URLS.get(company or "")
    return template.format(number) if template else None


# --- catalogue and locations -------------------------------------------------------------------


def variant_json(shop: Shop, variant: Variant) -> dict[str, Any]:
    offset = shop.utc_offset_minutes
    quantity = shop.inventory_quantity(variant)
    return {
        "id": variant.id,
        "product_id": variant.product_id,
        "title": variant.title,
        "price": money(variant.price_cents),
        "position": variant.position,
        "inventory_policy": "deny",
        "compare_at_price": None,
        "option1": variant.option1,
        "option2": None,
        "option3": None,
        "created_at": iso(variant.created_at, offset),
        "updated_at": iso(variant.updated_at, offset),
        "taxable": True,
        "barcode": variant.barcode,
        "fulfillment_service": "manual",
        "grams": variant.grams,
        "inventory_management": "shopify" if variant.tracked else None,
        "requires_shipping": variant.requires_shipping,
        "sku": variant.sku,
        "weight": round(variant.grams / 1000, 3),
        "weight_unit": "kg",
        "inventory_item_id": variant.inventory_item_id,
        "inventory_quantity": quantity,
        "old_inventory_quantity": quantity,
        "admin_graphql_api_id": gid("ProductVariant", variant.id),
        "image_id": None,
    }


def product_json(shop: Shop, product: Product) -> dict[str, Any]:
    offset = shop.utc_offset_minutes
    option_values = [variant.option1 for variant in product.variants]
    return {
        "id": product.id,
        "title": product.title,
        "body_html": f"<p>{product.title} by {product.vendor}.</p>",
        "vendor": product.vendor,
        "product_type": product.product_type,
        "created_at": iso(product.created_at, offset),
        "handle": product.handle,
        "updated_at": iso(product.updated_at, offset),
        "published_at": iso(product.created_at, offset),
        "template_suffix": None,
        "published_scope": "global",
        "tags": product.tags,
        "status": product.status,
        "admin_graphql_api_id": gid("Product", product.id),
        "variants": [variant_json(shop, variant) for variant in product.variants],
        "options": [
            {
                "id": product.id + 1,
                "product_id": product.id,
                "name": product.option_name or "Title",
                "position": 1,
                "values": option_values,
            }
        ],
        "images": [],
        "image": None,
    }


def location_json(shop: Shop, location: Location) -> dict[str, Any]:
    offset = shop.utc_offset_minutes
    return {
        "id": location.id,
        "name": location.name,
        "address1": location.address1,
        "address2": None,
        "city": location.city,
        "zip": location.zip,
        "province": None,
        "country": location.country_code,
        "phone": None,
        "created_at": iso(location.created_at, offset),
        "updated_at": iso(location.updated_at, offset),
        "country_code": location.country_code,
        "country_name": location.country,
        "province_code": None,
        "legacy": False,
        "active": location.active,
        "admin_graphql_api_id": gid("Location", location.id),
        "localized_country_name": location.country,
        "localized_province_name": None,
    }


def inventory_level_json(shop: Shop, level: InventoryLevel) -> dict[str, Any]:
    return {
        "inventory_item_id": level.inventory_item_id,
        "location_id": level.location_id,
        "available": level.available,
        "updated_at": iso(level.updated_at, shop.utc_offset_minutes),
        "admin_graphql_api_id": (
            f"gid://shopify/InventoryLevel/{level.location_id}"
            f"?inventory_item_id={level.inventory_item_id}"
        ),
    }


# --- orders ------------------------------------------------------------------------------------


def address_json(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "first_name": address.first_name,
        "last_name": address.last_name,
        "name": f"{address.first_name} {address.last_name}",
        "company": address.company,
        "address1": address.address1,
        "address2": address.address2,
        "city": address.city,
        "province": address.province,
        "province_code": address.province_code,
        "zip": address.zip,
        "country": address.country,
        "country_code": address.country_code,
        "phone": address.phone,
        "latitude": address.latitude,
        "longitude": address.longitude,
    }


def customer_json(shop: Shop, customer: Customer) -> dict[str, Any]:
    offset = shop.utc_offset_minutes
    return {
        "id": customer.id,
        "email": customer.email,
        "created_at": iso(customer.created_at, offset),
        "updated_at": iso(customer.created_at, offset),
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "state": "enabled",
        "note": None,
        "verified_email": True,
        "multipass_identifier": None,
        "tax_exempt": False,
        "phone": customer.phone,
        "currency": shop.currency,
        "tags": "",
        "admin_graphql_api_id": gid("Customer", customer.id),
        "default_address": {
            "id": customer.id + 1,
            "customer_id": customer.id,
            "default": True,
            **(address_json(customer.address) or {}),
        },
    }


def line_status(line: LineItem) -> str | None:
    if line.fulfilled_quantity == 0:
        return None
    return "fulfilled" if line.fulfillable_quantity == 0 else "partial"


def line_item_json(
    line: LineItem, currency: str, *, quantity: int | None = None, cancelled: bool = False
) -> dict[str, Any]:
    price = money(line.price_cents)
    shown = line.quantity if quantity is None else quantity
    tax = included_tax(line.price_cents * shown)
    return {
        "id": line.id,
        "admin_graphql_api_id": gid("LineItem", line.id),
        "attributed_staffs": [],
        "current_quantity": 0 if cancelled else line.current_quantity,
        "fulfillable_quantity": 0 if cancelled else line.fulfillable_quantity,
        "fulfillment_service": "manual",
        "fulfillment_status": line_status(line),
        "gift_card": False,
        "grams": line.grams,
        "name": f"{line.title} - {line.variant_title}" if line.variant_title else line.title,
        "price": price,
        "price_set": {
            "shop_money": {"amount": price, "currency_code": currency},
            "presentment_money": {"amount": price, "currency_code": currency},
        },
        "product_exists": line.product_id is not None,
        "product_id": line.product_id,
        "properties": [],
        "quantity": shown,
        "requires_shipping": line.requires_shipping,
        "sku": line.sku,
        "taxable": True,
        "title": line.title,
        "total_discount": "0.00",
        "total_discount_set": money_set(0, currency),
        "variant_id": line.variant_id,
        "variant_inventory_management": "shopify" if line.variant_id else None,
        "variant_title": line.variant_title,
        "vendor": line.vendor,
        "tax_lines": [
            {
                "title": "MwSt",
                "rate": TAX_RATE_PERCENT / 100,
                "price": money(tax),
                "price_set": money_set(tax, currency),
                "channel_liable": False,
            }
        ],
        "duties": [],
        "discount_allocations": [],
    }


def fulfillment_json(shop: Shop, fulfillment: Fulfillment) -> dict[str, Any]:
    offset = shop.utc_offset_minutes
    order = shop.orders[fulfillment.order_id]
    urls = fulfillment.tracking_urls or [
        url
        for url in (
            tracking_url(fulfillment.tracking_company, n) for n in fulfillment.tracking_numbers
        )
        if url
    ]
    return {
        "id": fulfillment.id,
        "admin_graphql_api_id": gid("Fulfillment", fulfillment.id),
        "created_at": iso(fulfillment.created_at, offset),
        "location_id": fulfillment.location_id,
        "name": fulfillment.name,
        "order_id": fulfillment.order_id,
        "origin_address": {},
        "receipt": {},
        "service": "manual",
        "shipment_status": fulfillment.shipment_status,
        "status": fulfillment.status,
        "tracking_company": fulfillment.tracking_company,
        "tracking_number": fulfillment.tracking_numbers[0]
        if fulfillment.tracking_numbers
        else None,
        "tracking_numbers": list(fulfillment.tracking_numbers),
        "tracking_url": urls[0] if urls else None,
        "tracking_urls": urls,
        "updated_at": iso(fulfillment.updated_at, offset),
        "line_items": [
            line_item_json(line, order.currency, quantity=fulfillment.quantities[line.id])
            for line in order.line_items
            if line.id in fulfillment.quantities
        ],
    }


def order_totals(order: Order) -> dict[str, int]:
    """Cents: lines as ordered, lines now (after edits; nothing once cancelled), shipping and
    the tax included in each total."""
    cancelled = order.cancelled_at is not None
    subtotal = sum(line.price_cents * line.quantity for line in order.line_items)
    current_subtotal = (
        0
        if cancelled
        else sum(line.price_cents * line.current_quantity for line in order.line_items)
    )
    total = subtotal + order.shipping_cents
    current_total = current_subtotal + (0 if cancelled else order.shipping_cents)
    return {
        "subtotal": subtotal,
        "current_subtotal": current_subtotal,
        "total": total,
        "current_total": current_total,
        "tax": included_tax(total),
        "current_tax": included_tax(current_total),
    }


def order_json(shop: Shop, order: Order) -> dict[str, Any]:
    offset = shop.utc_offset_minutes
    currency = order.currency
    cancelled = order.cancelled_at is not None
    totals = order_totals(order)
    lines_total = totals["subtotal"]
    current_lines = totals["current_subtotal"]
    shipping = order.shipping_cents
    total = totals["total"]
    current_total = totals["current_total"]
    tax = totals["tax"]
    current_tax = totals["current_tax"]
    outstanding = 0 if order.financial_status in ("paid", "refunded", "voided") else total
    grams = sum(line.grams * line.current_quantity for line in order.line_items)
    name = f"#{1000 + order.number}"
    return {
        "id": order.id,
        "admin_graphql_api_id": gid("Order", order.id),
        "app_id": 580111,
        "browser_ip": None,
        "buyer_accepts_marketing": False,
        "cancel_reason": order.cancel_reason,
        "cancelled_at": iso(order.cancelled_at, offset),
        "cart_token": None,
        "checkout_id": order.id + 7,
        "checkout_token": f"c{order.id:x}",
        "client_details": None,
        "closed_at": iso(order.closed_at, offset),
        "confirmation_number": f"R{order.id % 100_000_000:08d}",
        "confirmed": True,
        "contact_email": order.email,
        "created_at": iso(order.created_at, offset),
        "currency": currency,
        "current_subtotal_price": money(current_lines),
        "current_subtotal_price_set": money_set(current_lines, currency),
        "current_total_discounts": "0.00",
        "current_total_discounts_set": money_set(0, currency),
        "current_total_price": money(current_total),
        "current_total_price_set": money_set(current_total, currency),
        "current_total_tax": money(current_tax),
        "current_total_tax_set": money_set(current_tax, currency),
        "customer_locale": "de",
        "discount_codes": [],
        "email": order.email,
        "estimated_taxes": False,
        "financial_status": order.financial_status,
        "fulfillment_status": order.fulfillment_status,
        "landing_site": None,
        "location_id": None if order.source_name == "web" else order.location_id,
        "name": name,
        "note": order.note,
        "note_attributes": [],
        "number": order.number,
        "order_number": 1000 + order.number,
        "order_status_url": f"https://{shop.domain}/{shop.id}/orders/{order.id:x}/authenticate",
        "payment_gateway_names": ["shopify_payments"],
        "phone": None,
        "presentment_currency": currency,
        "processed_at": iso(order.processed_at, offset),
        "reference": None,
        "referring_site": None,
        "source_identifier": None,
        "source_name": order.source_name,
        "subtotal_price": money(lines_total),
        "subtotal_price_set": money_set(lines_total, currency),
        "tags": order.tags,
        "tax_lines": [
            {
                "title": "MwSt",
                "rate": TAX_RATE_PERCENT / 100,
                "price": money(tax),
                "price_set": money_set(tax, currency),
                "channel_liable": False,
            }
        ],
        "taxes_included": True,
        "test": order.test,
        "token": f"t{order.id:x}",
        "total_discounts": "0.00",
        "total_discounts_set": money_set(0, currency),
        "total_line_items_price": money(lines_total),
        "total_line_items_price_set": money_set(lines_total, currency),
        "total_outstanding": money(outstanding),
        "total_price": money(total),
        "total_price_set": money_set(total, currency),
        "total_shipping_price_set": money_set(shipping, currency),
        "total_tax": money(tax),
        "total_tax_set": money_set(tax, currency),
        "total_tip_received": "0.00",
        "total_weight": grams,
        "updated_at": iso(order.updated_at, offset),
        "user_id": None,
        "billing_address": address_json(order.address),
        "customer": customer_json(shop, order.customer) if order.customer else None,
        "discount_applications": [],
        "fulfillments": [
            fulfillment_json(shop, shop.fulfillments[f]) for f in order.fulfillment_ids
        ],
        "line_items": [
            line_item_json(line, currency, cancelled=cancelled) for line in order.line_items
        ],
        "payment_terms": None,
        "refunds": [],
        "shipping_address": address_json(order.address),
        "shipping_lines": [
            {
                "id": order.id + 3,
                "code": "Standard",
                "title": "Standard" if shipping else "Free shipping",
                "source": "shopify",
                "price": money(shipping),
                "price_set": money_set(shipping, currency),
                "discounted_price": money(shipping),
                "discounted_price_set": money_set(shipping, currency),
                "carrier_identifier": None,
                "phone": None,
                "is_removed": False,
                "requested_fulfillment_service_id": None,
                "tax_lines": [],
                "discount_allocations": [],
            }
        ],
    }


def order_edit_json(shop: Shop, edit: OrderEdit) -> dict[str, Any]:
    return {
        "order_edit": {
            "id": edit.id,
            "app_id": None,
            "created_at": iso(edit.created_at, shop.utc_offset_minutes),
            "notify_customer": False,
            "order_id": edit.order.id,
            "staff_note": "",
            "user_id": None,
            "line_items": {
                "additions": [{"id": line, "delta": delta} for line, delta in edit.additions],
                "removals": [{"id": line, "delta": delta} for line, delta in edit.removals],
            },
            "discounts": {"line_item": {"additions": [], "removals": []}},
            "shipping_lines": {"additions": [], "removals": []},
        }
    }


def fulfillment_order_json(
    state: SandboxState, shop: Shop, order: Order, fulfillment_order: FulfillmentOrder
) -> dict[str, Any]:
    offset = shop.utc_offset_minutes
    status = state.fulfillment_order_status(order)
    location = shop.locations[fulfillment_order.location_id]
    lines = {line.id: line for line in order.line_items}
    actions = (
        ["create_fulfillment", "move", "hold", "split"] if status in ("open", "in_progress") else []
    )
    return {
        "id": fulfillment_order.id,
        "admin_graphql_api_id": gid("FulfillmentOrder", fulfillment_order.id),
        "shop_id": shop.id,
        "order_id": order.id,
        "assigned_location_id": location.id,
        "request_status": "unsubmitted",
        "status": status,
        "fulfill_at": iso(fulfillment_order.created_at, offset),
        "fulfill_by": None,
        "supported_actions": actions,
        "destination": None
        if order.address is None
        else {
            "id": fulfillment_order.id + 1,
            "address1": order.address.address1,
            "address2": order.address.address2,
            "city": order.address.city,
            "company": order.address.company,
            "country": order.address.country,
            "email": order.email,
            "first_name": order.address.first_name,
            "last_name": order.address.last_name,
            "phone": order.address.phone,
            "province": order.address.province,
            "zip": order.address.zip,
        },
        "line_items": [
            {
                "id": fo_line_id,
                "admin_graphql_api_id": gid("FulfillmentOrderLineItem", fo_line_id),
                "shop_id": shop.id,
                "fulfillment_order_id": fulfillment_order.id,
                "quantity": 0 if order.cancelled_at else lines[line_id].current_quantity,
                "line_item_id": line_id,
                "inventory_item_id": lines[line_id].inventory_item_id,
                "fulfillable_quantity": (
                    0 if order.cancelled_at else lines[line_id].fulfillable_quantity
                ),
                "variant_id": lines[line_id].variant_id,
            }
            for line_id, fo_line_id in fulfillment_order.line_ids.items()
        ],
        "international_duties": None,
        "fulfillment_holds": [],
        "delivery_method": {"id": fulfillment_order.id + 2, "method_type": "shipping"},
        "assigned_location": {
            "address1": location.address1,
            "address2": None,
            "city": location.city,
            "country_code": location.country_code,
            "location_id": location.id,
            "name": location.name,
            "phone": None,
            "province": None,
            "zip": location.zip,
        },
        "merchant_requests": [],
        "created_at": iso(fulfillment_order.created_at, offset),
        "updated_at": iso(fulfillment_order.updated_at, offset),
    }


def webhook_json(shop: Shop, hook: WebhookSubscription) -> dict[str, Any]:
    offset = shop.utc_offset_minutes
    return {
        "id": hook.id,
        "address": hook.address,
        "topic": hook.topic,
        "created_at": iso(hook.created_at, offset),
        "updated_at": iso(hook.updated_at, offset),
        "format": hook.format,
        "fields": list(hook.fields),
        "metafield_namespaces": [],
        "api_version": hook.api_version,
        "private_metafield_namespaces": [],
        "admin_graphql_api_id": gid("WebhookSubscription", hook.id),
    }


def shop_json(shop: Shop) -> dict[str, Any]:
    return {
        "id": shop.id,
        "name": shop.name,
        "domain": shop.domain,
        "myshopify_domain": shop.domain,
        "currency": shop.currency,
        "plan_name": shop.plan.name,
        "created_at": iso(shop.created_at, shop.utc_offset_minutes),
    }


def select_fields(payload: dict[str, Any], fields: Iterable[str] | None) -> dict[str, Any]:
    """The ``fields`` parameter: only the named top-level keys."""
    if not fields:
        return payload
    wanted = set(fields)
    return {key: value for key, value in payload.items() if key in wanted}
