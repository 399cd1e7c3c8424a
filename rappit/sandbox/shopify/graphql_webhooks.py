"""Webhook subscriptions in the GraphQL Admin API (reference/channel-apis.md §8.1): the
``webhookSubscriptions`` connection (filters ``topics``, ``uri``, ``format``) and the mutations
``webhookSubscriptionCreate``, ``webhookSubscriptionUpdate`` and ``webhookSubscriptionDelete``.

They are the same subscriptions as REST's ``webhooks.json`` (one store per shop), so one made
through either API is seen, changed and removed through the other. Topics are Shopify's enum
(``ORDERS_CREATE`` for ``orders/create``). The compliance topics are not in that enum: on
Shopify they are configured in the app (``shopify.app.toml`` or the Dev Dashboard), never
through the API, so asking for one is an invalid argument here too. A subscription keeps the
API version of the request that created it; an update changes its address, format and fields,
never its version.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from rappit.sandbox.shopify.gql import GraphQLError, Resolved
from rappit.sandbox.shopify.state import SandboxState, Shop, WebhookSubscription
from rappit.sandbox.shopify.webhooks import TOPICS

MUTATIONS = frozenset(
    {"webhookSubscriptionCreate", "webhookSubscriptionUpdate", "webhookSubscriptionDelete"}
)
FORMATS = frozenset({"JSON", "XML"})
GID_PREFIX = "gid://shopify/WebhookSubscription/"


def topic_enum(topic: str) -> str:
    """``orders/create`` → ``ORDERS_CREATE``, the spelling of ``WebhookSubscriptionTopic``."""
    return topic.upper().replace("/", "_")


TOPIC_BY_ENUM = {topic_enum(topic): topic for topic in TOPICS}


def _utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def node(hook: WebhookSubscription) -> Resolved:
    return {
        "__typename": "WebhookSubscription",
        "id": f"{GID_PREFIX}{hook.id}",
        "legacyResourceId": str(hook.id),
        "topic": topic_enum(hook.topic),
        "uri": hook.address,
        # The names before 2025-10, still answered.
        "callbackUrl": hook.address,
        "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": hook.address},
        "format": hook.format.upper(),
        "includeFields": list(hook.fields),
        "metafieldNamespaces": [],
        "filter": None,
        "apiVersion": {
            "__typename": "ApiVersion",
            "handle": hook.api_version,
            "displayName": hook.api_version,
            "supported": True,
        },
        "createdAt": _utc(hook.created_at),
        "updatedAt": _utc(hook.updated_at),
    }


def _topic(value: Any, argument: str, field: str) -> str:
    topic = TOPIC_BY_ENUM.get(value) if isinstance(value, str) else None
    if topic is None:
        raise GraphQLError(
            f"Argument '{argument}' on Field '{field}' has an invalid value ({value}). "
            "Expected type 'WebhookSubscriptionTopic!'.",
            code="argumentLiteralsIncompatible",
        )
    return topic


def matching(shop: Shop, arguments: dict[str, Any]) -> list[WebhookSubscription]:
    """The shop's subscriptions in id order, narrowed by the connection's filters."""
    topics = arguments.get("topics")
    wanted = (
        {_topic(value, "topics", "webhookSubscriptions") for value in topics}
        if isinstance(topics, list) and topics
        else None
    )
    uri = arguments.get("uri") or arguments.get("callbackUrl")
    format_ = arguments.get("format")
    hooks = [shop.webhooks[key] for key in sorted(shop.webhooks)]
    return [
        hook
        for hook in hooks
        if (wanted is None or hook.topic in wanted)
        and (uri is None or hook.address == uri)
        and (format_ is None or hook.format.upper() == format_)
    ]


def _user_error(field: list[str], message: str) -> Resolved:
    return {"__typename": "UserError", "field": field, "message": message}


def _valid_address(address: Any) -> bool:
    if not isinstance(address, str) or not address:
        return False
    parts = urlsplit(address)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _checked(
    shop: Shop,
    data: dict[str, Any],
    topic: str,
    hook: WebhookSubscription | None,
) -> tuple[str, str, list[str]] | list[Resolved]:
    """The address, format and fields a create or update leaves, or its user errors."""
    address = data.get("uri", data.get("callbackUrl", hook.address if hook else None))
    format_ = data.get("format", hook.format.upper() if hook else "JSON")
    fields = data.get("includeFields", hook.fields if hook else [])
    errors: list[Resolved] = []
    if not address:
        errors.append(_user_error(["webhookSubscription", "uri"], "Address can't be blank"))
    elif not _valid_address(address):
        errors.append(_user_error(["webhookSubscription", "uri"], "Address is invalid"))
    elif any(
        other is not hook and other.topic == topic and other.address == address
        for other in shop.webhooks.values()
    ):
        errors.append(
            _user_error(
                ["webhookSubscription", "uri"], "Address for this topic has already been taken"
            )
        )
    if format_ not in FORMATS:
        errors.append(_user_error(["webhookSubscription", "format"], "Format is invalid"))
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        errors.append(
            _user_error(["webhookSubscription", "includeFields"], "Include fields is invalid")
        )
    if errors:
        return errors
    return str(address), str(format_).lower(), list(fields)


def _hook_of(shop: Shop, value: Any) -> WebhookSubscription | None:
    if not isinstance(value, str) or not value.startswith(GID_PREFIX):
        return None
    tail = value[len(GID_PREFIX) :]
    return shop.webhooks.get(int(tail)) if tail.isdigit() else None


def _payload(typename: str, hook: WebhookSubscription | None, errors: list[Resolved]) -> Resolved:
    return {
        "__typename": typename,
        "webhookSubscription": node(hook) if hook is not None else None,
        "userErrors": errors,
    }


def _create(state: SandboxState, shop: Shop, version: str, arguments: dict[str, Any]) -> Resolved:
    typename = "WebhookSubscriptionCreatePayload"
    topic = _topic(arguments.get("topic"), "topic", "webhookSubscriptionCreate")
    data = arguments.get("webhookSubscription")
    checked = _checked(shop, data if isinstance(data, dict) else {}, topic, None)
    if isinstance(checked, list):
        return _payload(typename, None, checked)
    address, format_, fields = checked
    now = state.now()
    hook = WebhookSubscription(
        id=state.ids.next("webhook"),
        topic=topic,
        address=address,
        format=format_,
        api_version=version,
        created_at=now,
        updated_at=now,
        fields=fields,
    )
    shop.webhooks[hook.id] = hook
    return _payload(typename, hook, [])


def _update(state: SandboxState, shop: Shop, arguments: dict[str, Any]) -> Resolved:
    typename = "WebhookSubscriptionUpdatePayload"
    hook = _hook_of(shop, arguments.get("id"))
    if hook is None:
        return _payload(
            typename, None, [_user_error(["id"], "Webhook subscription does not exist")]
        )
    data = arguments.get("webhookSubscription")
    checked = _checked(shop, data if isinstance(data, dict) else {}, hook.topic, hook)
    if isinstance(checked, list):
        return _payload(typename, None, checked)
    hook.address, hook.format, hook.fields = checked
    hook.updated_at = state.now()
    return _payload(typename, hook, [])


def _delete(shop: Shop, arguments: dict[str, Any]) -> Resolved:
    typename = "WebhookSubscriptionDeletePayload"
    hook = _hook_of(shop, arguments.get("id"))
    if hook is None:
        return {
            "__typename": typename,
            "deletedWebhookSubscriptionId": None,
            "userErrors": [_user_error(["id"], "Webhook subscription does not exist")],
        }
    del shop.webhooks[hook.id]
    return {
        "__typename": typename,
        "deletedWebhookSubscriptionId": f"{GID_PREFIX}{hook.id}",
        "userErrors": [],
    }


def mutate(
    state: SandboxState, shop: Shop, version: str, name: str, arguments: dict[str, Any]
) -> Resolved:
    if name == "webhookSubscriptionCreate":
        return _create(state, shop, version, arguments)
    if name == "webhookSubscriptionUpdate":
        return _update(state, shop, arguments)
    assert name == "webhookSubscriptionDelete", name
    return _delete(shop, arguments)
