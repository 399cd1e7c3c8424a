"""Writing Rappit's fulfilments to Shopify through the order's fulfilment orders
(reference/channel-apis.md §5), never the removed ``POST /orders/{id}/fulfillments.json``.

Creating: the order's fulfilment orders are read (GraphQL ``order.fulfillmentOrders``), each
Rappit line is spread over the fulfilment order lines of the same order line (by the order's
line item id) that are still open, and ``fulfillmentCreate`` is sent with
``lineItemsByFulfillmentOrder``, ``trackingInfo`` and ``notifyCustomer``. Tracking changes go
through ``fulfillmentTrackingInfoUpdate``.

No double creation: ``fulfillmentCreate`` takes no idempotency key, and a create whose answer
was lost may have been carried out. The client therefore never repeats it by itself, and when
the job tries again after such a loss (``may_exist``) the order's fulfilments are read first: one
that no other Rappit fulfilment stands for, is not cancelled and has exactly the same line
quantities is taken as the one the lost call made (one whose tracking number also matches is
preferred). Shopify keeps nothing of ours on a fulfilment that could serve as a marker (no
metafields, no readable message), and a fulfilment with identical lines that nothing in Rappit
claims is, for stock and for the customer, the same shipment.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from rappit.channels.service import credentials_of
from rappit.fulfillments.service import Tracking
from rappit.fulfillments.target import (
    ChannelFulfillmentRef,
    FulfillmentRefused,
    FulfillmentTargets,
    OutboundFulfillment,
)
from rappit.integrations.shopify.client import ShopifyClient
from rappit.integrations.shopify.errors import ShopifyError
from rappit.kit.crypto import SecretBox
from rappit.kit.ratelimit import SharedLeakyBucket
from rappit.models import Channel, ChannelType

logger = logging.getLogger(__name__)

ClientFactory = Callable[[Channel], ShopifyClient]

# Page sizes keep each query's requested cost under Shopify's 1,000-point maximum.
FULFILLMENT_ORDERS_PAGE = 10
FO_LINES_PAGE = 40
FULFILLMENTS_PAGE = 20
FULFILLMENT_LINES_PAGE = 40
MORE_LINES_PAGE = 100
# Fulfilment orders a fulfilment can be created on (ON_HOLD, SCHEDULED, CLOSED... cannot).
FULFILLABLE = frozenset({"OPEN", "IN_PROGRESS"})
NOT_SHIPPED = frozenset({"CANCELLED", "ERROR", "FAILURE"})

FULFILLMENT_ORDERS_QUERY = f"""
query RappitFulfillmentOrders($id: ID!, $after: String) {{
  order(id: $id) {{
    id
    cancelledAt
    fulfillmentOrders(first: {FULFILLMENT_ORDERS_PAGE}, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{
        id
        status
        lineItems(first: {FO_LINES_PAGE}) {{
          pageInfo {{ hasNextPage endCursor }}
          nodes {{ id remainingQuantity lineItem {{ id }} }}
        }}
      }}
    }}
  }}
}}
"""

MORE_FO_LINES_QUERY = f"""
query RappitFulfillmentOrderLines($id: ID!, $after: String) {{
  fulfillmentOrder(id: $id) {{
    lineItems(first: {MORE_LINES_PAGE}, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ id remainingQuantity lineItem {{ id }} }}
    }}
  }}
}}
"""

ORDER_FULFILLMENTS_QUERY = f"""
query RappitOrderFulfillments($id: ID!) {{
  order(id: $id) {{
    fulfillments(first: {FULFILLMENTS_PAGE}) {{
      id
      status
      updatedAt
      trackingInfo(first: 1) {{ number company url }}
      fulfillmentLineItems(first: {FULFILLMENT_LINES_PAGE}) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ quantity lineItem {{ id }} }}
      }}
    }}
  }}
}}
"""

MORE_FULFILLMENT_LINES_QUERY = f"""
query RappitFulfillmentLines($id: ID!, $after: String) {{
  node(id: $id) {{
    ... on Fulfillment {{
      fulfillmentLineItems(first: {MORE_LINES_PAGE}, after: $after) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ quantity lineItem {{ id }} }}
      }}
    }}
  }}
}}
"""

FULFILLMENT_CREATE = """
mutation RappitFulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status updatedAt trackingInfo(first: 1) { number company url } }
    userErrors { field message }
  }
}
"""

TRACKING_UPDATE = """
mutation RappitFulfillmentTracking(
  $id: ID!, $tracking: FulfillmentTrackingInput!, $notify: Boolean
) {
  fulfillmentTrackingInfoUpdate(
    fulfillmentId: $id, trackingInfoInput: $tracking, notifyCustomer: $notify
  ) {
    fulfillment { id updatedAt }
    userErrors { field message }
  }
}
"""


def gid(kind: str, legacy_id: str) -> str:
    return f"gid://shopify/{kind}/{legacy_id}"


def legacy_id(global_id: Any) -> str:
    """The numeric id at the end of a GID (the id REST and webhooks use)."""
    text = str(global_id or "")
    tail = text.rsplit("/", 1)[-1].split("?", 1)[0]
    if not text.startswith("gid://shopify/") or not tail.isdigit():
        raise FulfillmentRefused(f"Shopify answered an unexpected id: {text!r}")
    return tail


@dataclass
class FulfillmentOrderLine:
    fulfillment_order_id: str
    id: str
    line_item_id: str  # the order's line item id, as Rappit stores it
    remaining: int


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as Shopify writes it (REST with an offset, GraphQL with ``Z``);
    None when absent or unreadable."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _tracking_input(tracking: Tracking) -> dict[str, str]:
    values = {"number": tracking.number, "company": tracking.company, "url": tracking.url}
    return {key: value for key, value in values.items() if value}


def _tracking_of(node: dict[str, Any]) -> Tracking:
    info = node.get("trackingInfo") or []
    first = info[0] if info else {}
    return Tracking(number=first.get("number"), company=first.get("company"), url=first.get("url"))


def _messages(user_errors: list[dict[str, Any]]) -> str:
    return "; ".join(str(error.get("message")) for error in user_errors)


def plan_lines(
    fulfillment: OutboundFulfillment, lines: list[FulfillmentOrderLine]
) -> list[dict[str, Any]]:
    """``lineItemsByFulfillmentOrder`` for the wanted lines: each order line's units are taken
    from its open fulfilment order lines in order; too few left there is a refusal."""
    by_line: dict[str, list[FulfillmentOrderLine]] = defaultdict(list)
    for line in lines:
        if line.remaining > 0:
            by_line[line.line_item_id].append(line)
    groups: dict[str, list[dict[str, Any]]] = {}
    for wanted in fulfillment.lines:
        left = wanted.quantity
        for line in by_line.get(wanted.external_item_id, []):
            take = min(left, line.remaining)
            if take:
                groups.setdefault(line.fulfillment_order_id, []).append(
                    {"id": line.id, "quantity": take}
                )
                line.remaining -= take
                left -= take
        if left:
            open_units = wanted.quantity - left
            raise FulfillmentRefused(
                f"Shopify has {open_units} unit(s) of line item {wanted.external_item_id} left "
                f"to fulfil on open fulfilment orders, not {wanted.quantity}"
            )
    return [
        {"fulfillmentOrderId": fo_id, "fulfillmentOrderLineItems": fo_lines}
        for fo_id, fo_lines in groups.items()
    ]


class ShopifyFulfillmentTarget:
    def __init__(self, build_client: ClientFactory) -> None:
        self.build_client = build_client

    async def create(
        self, channel: Channel, fulfillment: OutboundFulfillment
    ) -> ChannelFulfillmentRef:
        async with self.build_client(channel) as client:
            try:
                if fulfillment.may_exist:
                    found = await self._find_existing(client, fulfillment)
                    if found is not None:
                        logger.info(
                            "fulfilment %s of order %s already in Shopify (an earlier attempt "
                            "made it); adopted",
                            found.external_id,
                            fulfillment.external_order_id,
                        )
                        return found
                lines = await self._open_lines(client, fulfillment.external_order_id)
                groups = plan_lines(fulfillment, lines)
                data: dict[str, Any] = {
                    "lineItemsByFulfillmentOrder": groups,
                    "notifyCustomer": fulfillment.notify_customer,
                }
                tracking = _tracking_input(fulfillment.tracking)
                if tracking:
                    data["trackingInfo"] = tracking
                answer = await client.graphql(FULFILLMENT_CREATE, {"fulfillment": data})
            except ShopifyError as exc:
                _raise_refused_unless_retryable(exc)
                raise
        payload = answer.get("fulfillmentCreate") or {}
        if payload.get("userErrors"):
            raise FulfillmentRefused(
                f"Shopify refused the fulfilment: {_messages(payload['userErrors'])}"
            )
        created = payload.get("fulfillment")
        if not created:
            raise FulfillmentRefused("Shopify answered fulfillmentCreate without a fulfilment")
        return ChannelFulfillmentRef(
            legacy_id(created.get("id")),
            _tracking_of(created),
            updated_at=parse_timestamp(created.get("updatedAt")),
        )

    async def update_tracking(
        self,
        channel: Channel,
        external_fulfillment_id: str,
        tracking: Tracking,
        *,
        notify_customer: bool,
    ) -> datetime | None:
        variables = {
            "id": gid("Fulfillment", external_fulfillment_id),
            "tracking": _tracking_input(tracking),
            "notify": notify_customer,
        }
        async with self.build_client(channel) as client:
            try:
                # Sets absolute values: repeating it after a lost answer changes nothing.
                answer = await client.graphql(TRACKING_UPDATE, variables, idempotent=True)
            except ShopifyError as exc:
                _raise_refused_unless_retryable(exc)
                raise
        payload = answer.get("fulfillmentTrackingInfoUpdate") or {}
        if payload.get("userErrors"):
            raise FulfillmentRefused(
                f"Shopify refused the tracking update: {_messages(payload['userErrors'])}"
            )
        return parse_timestamp((payload.get("fulfillment") or {}).get("updatedAt"))

    # --- reading --------------------------------------------------------------------------

    async def _open_lines(
        self, client: ShopifyClient, external_order_id: str
    ) -> list[FulfillmentOrderLine]:
        lines: list[FulfillmentOrderLine] = []
        after: str | None = None
        while True:
            data = await client.graphql(
                FULFILLMENT_ORDERS_QUERY, {"id": gid("Order", external_order_id), "after": after}
            )
            order = data.get("order")
            if order is None:
                raise FulfillmentRefused(f"order {external_order_id} does not exist in Shopify")
            if order.get("cancelledAt"):
                raise FulfillmentRefused(f"order {external_order_id} was cancelled in Shopify")
            page = order["fulfillmentOrders"]
            for fo in page["nodes"]:
                if fo.get("status") not in FULFILLABLE:
                    continue
                nodes = await self._all_nodes(
                    client, fo["lineItems"], MORE_FO_LINES_QUERY, fo["id"], "fulfillmentOrder"
                )
                lines.extend(
                    FulfillmentOrderLine(
                        fulfillment_order_id=fo["id"],
                        id=node["id"],
                        line_item_id=legacy_id(node["lineItem"]["id"]),
                        remaining=int(node.get("remainingQuantity") or 0),
                    )
                    for node in nodes
                )
            if not page["pageInfo"]["hasNextPage"]:
                return lines
            after = page["pageInfo"]["endCursor"]

    async def _find_existing(
        self, client: ShopifyClient, fulfillment: OutboundFulfillment
    ) -> ChannelFulfillmentRef | None:
        data = await client.graphql(
            ORDER_FULFILLMENTS_QUERY, {"id": gid("Order", fulfillment.external_order_id)}
        )
        order = data.get("order")
        if order is None:
            return None
        wanted = {line.external_item_id: line.quantity for line in fulfillment.lines}
        matches: list[ChannelFulfillmentRef] = []
        for node in order.get("fulfillments") or []:
            external_id = legacy_id(node.get("id"))
            if external_id in fulfillment.known_external_ids:
                continue
            if str(node.get("status") or "").upper() in NOT_SHIPPED:
                continue
            nodes = await self._all_nodes(
                client,
                node["fulfillmentLineItems"],
                MORE_FULFILLMENT_LINES_QUERY,
                node["id"],
                "node",
            )
            quantities: dict[str, int] = defaultdict(int)
            for line in nodes:
                quantities[legacy_id(line["lineItem"]["id"])] += int(line["quantity"])
            if quantities == wanted:
                matches.append(
                    ChannelFulfillmentRef(
                        external_id,
                        _tracking_of(node),
                        adopted=True,
                        updated_at=parse_timestamp(node.get("updatedAt")),
                    )
                )
        if not matches:
            return None
        same_number = [m for m in matches if m.tracking.number == fulfillment.tracking.number]
        return (same_number or matches)[0]

    @staticmethod
    async def _all_nodes(
        client: ShopifyClient, connection: dict[str, Any], query: str, owner: str, root: str
    ) -> list[dict[str, Any]]:
        """The nodes of a nested connection, reading its further pages when there are any."""
        nodes = list(connection["nodes"])
        page_info = connection["pageInfo"]
        while page_info["hasNextPage"]:
            data = await client.graphql(query, {"id": owner, "after": page_info["endCursor"]})
            holder = data.get(root) or {}
            more = holder.get("lineItems") or holder.get("fulfillmentLineItems")
            if more is None:
                break
            nodes.extend(more["nodes"])
            page_info = more["pageInfo"]
        return nodes


def _raise_refused_unless_retryable(error: ShopifyError) -> None:
    """A 5xx, network failure or throttle is tried again by the queue (the caller re-raises
    it); any other answer (4xx, access denied, a shop frozen or gone) will not change by
    itself."""
    if not error.retryable:
        raise FulfillmentRefused(str(error)) from error


def client_factory(secret_box: SecretBox, redis: aioredis.Redis, prefix: str) -> ClientFactory:
    limiter = SharedLeakyBucket(redis, key_prefix=f"{prefix}:ratelimit")

    def build(channel: Channel) -> ShopifyClient:
        return ShopifyClient.for_channel(channel, credentials_of(channel, secret_box), limiter)

    return build


def register(
    targets: FulfillmentTargets, secret_box: SecretBox, redis: aioredis.Redis, prefix: str
) -> None:
    targets.register(
        ChannelType.SHOPIFY,
        ShopifyFulfillmentTarget(client_factory(secret_box, redis, prefix)),
    )
