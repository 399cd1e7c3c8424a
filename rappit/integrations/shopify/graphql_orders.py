"""Shopify's GraphQL ``Order`` turned into the REST order JSON that ``orders.map_order`` reads, so
an order imported through a bulk operation becomes exactly the ``ChannelOrder`` that a webhook
or a REST poll makes of the same order (one mapper, one meaning for every field).

What differs between the two APIs, and how it is bridged (reference/channel-apis.md §4.1):

- ids are GIDs (``gid://shopify/Order/123``) in GraphQL and integers in REST;
- times are UTC (``Z``) in GraphQL and in the shop's time zone in REST: they are converted with
  the shop's ``ianaTimezone`` (``timezoneOffsetMinutes`` when no zone database knows the name);
- money is ``MoneyBag``s (``totalPriceSet { shopMoney { amount } }``) instead of strings and
  ``*_set`` objects; enums are upper case (``PAID``, ``CUSTOMER``) instead of lower case;
- ``number`` is the number shown in the name (REST ``order_number``); REST ``number`` is that
  minus 1000;
- ``displayFulfillmentStatus`` has more states than REST's ``fulfillment_status``: only
  fulfilled, partially fulfilled and restocked have a REST counterpart, the rest is null
  (unfulfilled), as REST shows them;
- a line's units left to fulfil are ``unfulfilledQuantity`` (REST ``fulfillable_quantity``;
  GraphQL's own ``fulfillableQuantity`` is deprecated and not asked for);
- POS orders name their location in ``retailLocation`` (REST ``location_id``);
- tags are a list (REST: one comma-separated string), ``customAttributes`` are REST's
  ``note_attributes``;
- REST ``discount_codes[].amount`` is the sum of what the code took off the lines and the
  shipping: GraphQL gives it only as allocations, which are added up here.

Nested connections (line items, shipping lines, discount applications) arrive as separate
children of the order (bulk JSONL lines with ``__parentId``), told apart by ``__typename``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONEY = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"
_ADDRESS = (
    "firstName lastName name company address1 address2 city province provinceCode zip country "
    "countryCodeV2 phone"
)
_TAX_LINE = f"title rate channelLiable priceSet {{ {_MONEY} }}"
_ALLOCATION = f"allocatedAmountSet {{ {_MONEY} }} discountApplication {{ index }}"

ORDER_FIELDS = f"""
id name number email phone createdAt updatedAt processedAt closedAt cancelledAt cancelReason
test note tags sourceName currencyCode presentmentCurrencyCode displayFinancialStatus
displayFulfillmentStatus taxesIncluded discountCodes
customAttributes {{ key value }}
totalPriceSet {{ {_MONEY} }}
subtotalPriceSet {{ {_MONEY} }}
totalTaxSet {{ {_MONEY} }}
totalDiscountsSet {{ {_MONEY} }}
currentTotalPriceSet {{ {_MONEY} }}
currentSubtotalPriceSet {{ {_MONEY} }}
currentTotalTaxSet {{ {_MONEY} }}
totalShippingPriceSet {{ {_MONEY} }}
taxLines {{ {_TAX_LINE} }}
retailLocation {{ id }}
customer {{ id email firstName lastName phone }}
shippingAddress {{ {_ADDRESS} }}
billingAddress {{ {_ADDRESS} }}
"""
LINE_ITEM_FIELDS = f"""
__typename id name title sku quantity currentQuantity unfulfilledQuantity requiresShipping
originalUnitPriceSet {{ {_MONEY} }}
variant {{ id }}
product {{ id }}
discountAllocations {{ {_ALLOCATION} }}
"""
SHIPPING_LINE_FIELDS = f"""
__typename id code title source carrierIdentifier phone isRemoved
originalPriceSet {{ {_MONEY} }}
discountedPriceSet {{ {_MONEY} }}
requestedFulfillmentService {{ id }}
taxLines {{ {_TAX_LINE} }}
discountAllocations {{ {_ALLOCATION} }}
"""
DISCOUNT_APPLICATION_FIELDS = """
__typename index allocationMethod targetSelection targetType
value {
  __typename
  ... on MoneyV2 { amount currencyCode }
  ... on PricingPercentageValue { percentage }
}
... on DiscountCodeApplication { code }
... on ManualDiscountApplication { title description }
... on ScriptDiscountApplication { title }
... on AutomaticDiscountApplication { title }
"""

# Every order with what the mapper needs; a bulk query takes no page sizes, and its nested
# connections come back as child lines (at most 5 connections, 2 levels deep: this uses 4, 1).
BULK_ORDERS_QUERY = f"""{{
  orders {{
    edges {{
      node {{
        {ORDER_FIELDS}
        lineItems {{ edges {{ node {{ {LINE_ITEM_FIELDS} }} }} }}
        shippingLines {{ edges {{ node {{ {SHIPPING_LINE_FIELDS} }} }} }}
        discountApplications {{ edges {{ node {{ {DISCOUNT_APPLICATION_FIELDS} }} }} }}
      }}
    }}
  }}
}}"""

SHOP_ZONE_QUERY = "{ shop { ianaTimezone timezoneOffsetMinutes } }"

_FULFILLMENT_STATUS = {
    "FULFILLED": "fulfilled",
    "PARTIALLY_FULFILLED": "partial",
    "RESTOCKED": "restocked",
}
_DISCOUNT_TYPES = {
    "DiscountCodeApplication": "discount_code",
    "ManualDiscountApplication": "manual",
    "ScriptDiscountApplication": "script",
    "AutomaticDiscountApplication": "automatic",
}
LINE_ITEM = "LineItem"
SHIPPING_LINE = "ShippingLine"
DISCOUNT_APPLICATIONS = frozenset(_DISCOUNT_TYPES)


def shop_zone(iana: str | None, offset_minutes: int | None) -> tzinfo:
    """The zone REST times are written in: the shop's IANA zone (with its summer time), else
    its current fixed offset, else UTC."""
    if iana:
        try:
            return ZoneInfo(iana)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if offset_minutes:
        return timezone(timedelta(minutes=offset_minutes))
    return UTC


def legacy_id(gid: Any) -> int | None:
    """``gid://shopify/Order/123`` (or ``.../InventoryLevel/1?inventory_item_id=2``) → 123."""
    if not isinstance(gid, str) or not gid.startswith("gid://shopify/"):
        return None
    tail = gid[gid.rfind("/") + 1 :].partition("?")[0]
    return int(tail) if tail.isdigit() else None


def rest_time(value: Any, zone: tzinfo) -> str | None:
    """A GraphQL ``DateTime`` written as REST writes it: ISO 8601 in the shop's zone, seconds."""
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value).astimezone(zone).isoformat()  # reads "Z" since 3.11


def _amount(bag: Any) -> str | None:
    if not isinstance(bag, dict):
        return None
    money = bag.get("shopMoney")
    return money.get("amount") if isinstance(money, dict) else None


def _money_set(bag: Any) -> dict[str, Any] | None:
    if not isinstance(bag, dict):
        return None
    money_set = {}
    shop, presentment = bag.get("shopMoney"), bag.get("presentmentMoney")
    if isinstance(shop, dict):
        money_set["shop_money"] = {
            "amount": shop.get("amount"),
            "currency_code": shop.get("currencyCode"),
        }
    if isinstance(presentment, dict):
        money_set["presentment_money"] = {
            "amount": presentment.get("amount"),
            "currency_code": presentment.get("currencyCode"),
        }
    return money_set


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _address(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {
        "first_name": value.get("firstName"),
        "last_name": value.get("lastName"),
        "name": value.get("name"),
        "company": value.get("company"),
        "address1": value.get("address1"),
        "address2": value.get("address2"),
        "city": value.get("city"),
        "province": value.get("province"),
        "province_code": value.get("provinceCode"),
        "zip": value.get("zip"),
        "country": value.get("country"),
        "country_code": value.get("countryCodeV2"),
        "phone": value.get("phone"),
    }


def _customer(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {
        "id": legacy_id(value.get("id")),
        "email": value.get("email"),
        "first_name": value.get("firstName"),
        "last_name": value.get("lastName"),
        "phone": value.get("phone"),
    }


def _tax_lines(lines: Any) -> list[dict[str, Any]]:
    return [
        {
            "title": line.get("title"),
            "rate": line.get("rate"),
            "price": _amount(line.get("priceSet")),
            "price_set": _money_set(line.get("priceSet")),
            "channel_liable": line.get("channelLiable"),
        }
        for line in lines or []
        if isinstance(line, dict)
    ]


def _allocations(allocations: Any) -> list[dict[str, Any]]:
    return [
        {
            "amount": _amount(allocation.get("allocatedAmountSet")),
            "amount_set": _money_set(allocation.get("allocatedAmountSet")),
            "discount_application_index": (allocation.get("discountApplication") or {}).get(
                "index"
            ),
        }
        for allocation in allocations or []
        if isinstance(allocation, dict)
    ]


def _line_item(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": legacy_id(line.get("id")),
        "admin_graphql_api_id": line.get("id"),
        "variant_id": legacy_id((line.get("variant") or {}).get("id")),
        "product_id": legacy_id((line.get("product") or {}).get("id")),
        "sku": line.get("sku"),
        "name": line.get("name"),
        "title": line.get("title"),
        "quantity": line.get("quantity"),
        "current_quantity": line.get("currentQuantity"),
        "fulfillable_quantity": line.get("unfulfilledQuantity"),
        "price": _amount(line.get("originalUnitPriceSet")),
        "requires_shipping": line.get("requiresShipping", True),
    }


def _shipping_line(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": legacy_id(line.get("id")),
        "code": line.get("code"),
        "title": line.get("title"),
        "source": line.get("source"),
        "price": _amount(line.get("originalPriceSet")),
        "price_set": _money_set(line.get("originalPriceSet")),
        "discounted_price": _amount(line.get("discountedPriceSet")),
        "discounted_price_set": _money_set(line.get("discountedPriceSet")),
        "carrier_identifier": line.get("carrierIdentifier"),
        "phone": line.get("phone"),
        "is_removed": bool(line.get("isRemoved", False)),
        "requested_fulfillment_service_id": legacy_id(
            (line.get("requestedFulfillmentService") or {}).get("id")
        ),
        "tax_lines": _tax_lines(line.get("taxLines")),
        "discount_allocations": _allocations(line.get("discountAllocations")),
    }


def _discount_application(node: dict[str, Any]) -> dict[str, Any]:
    value = node.get("value") or {}
    percentage = value.get("percentage")
    application: dict[str, Any] = {
        "type": _DISCOUNT_TYPES[node["__typename"]],
        "value": str(percentage) if percentage is not None else value.get("amount"),
        "value_type": "percentage" if percentage is not None else "fixed_amount",
        "allocation_method": _lower(node.get("allocationMethod")),
        "target_selection": _lower(node.get("targetSelection")),
        "target_type": _lower(node.get("targetType")),
    }
    if node["__typename"] == "DiscountCodeApplication":
        application["code"] = node.get("code")
    else:
        application["title"] = node.get("title")
        if node["__typename"] in ("ManualDiscountApplication", "ScriptDiscountApplication"):
            application["description"] = node.get("description")
    return application


def _discount_codes(
    applications: list[dict[str, Any]], allocated: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    taken: dict[int, Decimal] = {}
    for allocation in allocated:
        index = (allocation.get("discountApplication") or {}).get("index")
        try:
            amount = Decimal(str(_amount(allocation.get("allocatedAmountSet")) or "0"))
        except InvalidOperation:
            continue
        if isinstance(index, int):
            taken[index] = taken.get(index, Decimal(0)) + amount
    codes = []
    for node in applications:
        if node["__typename"] != "DiscountCodeApplication":
            continue
        shipping = node.get("targetType") == "SHIPPING_LINE"
        percentage = (node.get("value") or {}).get("percentage") is not None
        codes.append(
            {
                "code": node.get("code"),
                "amount": f"{taken.get(node.get('index', -1), Decimal(0)):.2f}",
                "type": "shipping"
                if shipping
                else ("percentage" if percentage else "fixed_amount"),
            }
        )
    return codes


def rest_order(
    node: dict[str, Any], children: list[dict[str, Any]], zone: tzinfo
) -> dict[str, Any]:
    """One GraphQL order (with its child nodes) as the REST order JSON. Unknown child types are
    ignored; the mapper validates what it needs (ids, times, amounts)."""
    line_items = [c for c in children if c.get("__typename") == LINE_ITEM]
    shipping_lines = [c for c in children if c.get("__typename") == SHIPPING_LINE]
    applications = [c for c in children if c.get("__typename") in DISCOUNT_APPLICATIONS]
    allocations = [
        allocation
        for child in (*line_items, *shipping_lines)
        for allocation in child.get("discountAllocations") or []
        if isinstance(allocation, dict)
    ]
    number = node.get("number")
    location = node.get("retailLocation")
    return {
        "id": legacy_id(node.get("id")),
        "admin_graphql_api_id": node.get("id"),
        "name": node.get("name"),
        "order_number": number,
        "number": number - 1000 if isinstance(number, int) else None,
        "email": node.get("email"),
        "phone": node.get("phone"),
        "created_at": rest_time(node.get("createdAt"), zone),
        "updated_at": rest_time(node.get("updatedAt"), zone),
        "processed_at": rest_time(node.get("processedAt"), zone),
        "closed_at": rest_time(node.get("closedAt"), zone),
        "cancelled_at": rest_time(node.get("cancelledAt"), zone),
        "cancel_reason": _lower(node.get("cancelReason")),
        "test": bool(node.get("test", False)),
        "note": node.get("note"),
        "tags": ", ".join(node.get("tags") or []),
        "source_name": node.get("sourceName"),
        "currency": node.get("currencyCode"),
        "presentment_currency": node.get("presentmentCurrencyCode"),
        "financial_status": _lower(node.get("displayFinancialStatus")),
        "fulfillment_status": _FULFILLMENT_STATUS.get(str(node.get("displayFulfillmentStatus"))),
        "taxes_included": node.get("taxesIncluded"),
        "note_attributes": [
            {"name": attribute.get("key"), "value": attribute.get("value")}
            for attribute in node.get("customAttributes") or []
            if isinstance(attribute, dict)
        ],
        "discount_codes": _discount_codes(applications, allocations),
        "discount_applications": [_discount_application(a) for a in applications],
        "total_price": _amount(node.get("totalPriceSet")),
        "total_price_set": _money_set(node.get("totalPriceSet")),
        "subtotal_price": _amount(node.get("subtotalPriceSet")),
        "total_tax": _amount(node.get("totalTaxSet")),
        "total_discounts": _amount(node.get("totalDiscountsSet")),
        "current_total_price": _amount(node.get("currentTotalPriceSet")),
        "current_subtotal_price": _amount(node.get("currentSubtotalPriceSet")),
        "current_total_tax": _amount(node.get("currentTotalTaxSet")),
        "total_shipping_price_set": _money_set(node.get("totalShippingPriceSet")),
        "tax_lines": _tax_lines(node.get("taxLines")),
        "shipping_lines": [_shipping_line(line) for line in shipping_lines],
        "location_id": legacy_id(location.get("id")) if isinstance(location, dict) else None,
        "customer": _customer(node.get("customer")),
        "shipping_address": _address(node.get("shippingAddress")),
        "billing_address": _address(node.get("billingAddress")),
        "line_items": [_line_item(line) for line in line_items],
    }
