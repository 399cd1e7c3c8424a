"""The Shopify webhook topics Rappit takes in (DESIGN §7)."""

from __future__ import annotations

ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/cancelled"})
FULFILLMENT_TOPICS = frozenset({"fulfillments/create", "fulfillments/update"})
# Privacy topics every App Store app must handle (reference/channel-apis.md §1.6).
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
TOPICS = (
    ORDER_TOPICS
    | FULFILLMENT_TOPICS
    | COMPLIANCE_TOPICS
    | {"inventory_levels/update", "app/uninstalled"}
)
