"""A Shopify shop's webhook subscriptions, kept the way Rappit needs them
(reference/channel-apis.md §1.6, §8).

``register_webhooks`` lists the shop's subscriptions through the GraphQL Admin API (REST is
legacy, §2.4), works out a plan and carries it out:

- every topic Rappit handles (``topics.py``) ends with exactly one subscription of this
  deployment, at ``{RAPPIT_WEBHOOK_BASE_URL}/webhooks/shopify/{topic}``, in JSON, with every
  field, at the channel's API version;
- one with a wrong address, format or field list is updated; one at another API version is
  deleted and created again, because no update changes the version (a subscription keeps the
  version of the request that created it);
- a second one for the same topic, and one for a topic Rappit does not handle, are deleted;
- the missing ones are created.

"This deployment's" means the address lies under the base URL. Other apps' subscriptions are
not visible through the API at all, and those of other deployments of the same app (staging
next to production) point elsewhere: they are reported but never touched.

The compliance topics (``customers/data_request``, ``customers/redact``, ``shop/redact``) cannot
be subscribed through the Admin API: an app configures them in ``shopify.app.toml``
(``compliance_topics``) or the Dev Dashboard. They are reported with the address to configure
and never created or deleted.

A second run changes nothing. ``webhook_health`` works out the same plan without carrying it
out: the shop is healthy when there is nothing to do.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.channels.service import credentials_of, get_channel
from rappit.integrations.shopify.client import ShopifyClient
from rappit.integrations.shopify.errors import ShopifyError
from rappit.integrations.shopify.topics import COMPLIANCE_TOPICS, TOPICS
from rappit.kit.crypto import SecretBox
from rappit.kit.errors import ConfigurationError, Conflict, InvalidInput, NotFound, RappitError
from rappit.kit.ratelimit import SharedLeakyBucket
from rappit.models import Channel, ChannelStatus, ChannelType
from rappit.queues.worker import Handler, JobContext, PermanentJobError

if TYPE_CHECKING:
    from rappit.runtime import Runtime

logger = logging.getLogger(__name__)
T = TypeVar("T")

WEBHOOK_PATH = "/webhooks/shopify/"
# Every topic Rappit takes in that a shop can be subscribed to through the API.
SUBSCRIBED_TOPICS: tuple[str, ...] = tuple(sorted(TOPICS - COMPLIANCE_TOPICS))
# ``uri`` (and this way of subscribing) is the API's from 2025-10 on (§8.1).
MIN_API_VERSION = "2025-10"
PAGE_SIZE = 100
COMPLIANCE_NOTE = (
    "compliance topic: the Admin API cannot subscribe it; configure this address in the app's "
    "shopify.app.toml (compliance_topics) or in the Dev Dashboard"
)

_FIELDS = "id topic uri format includeFields apiVersion { handle }"
LIST_QUERY = f"""
query RappitWebhookSubscriptions($first: Int!, $after: String) {{
  webhookSubscriptions(first: $first, after: $after) {{
    nodes {{ {_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
CREATE_MUTATION = f"""
mutation RappitWebhookCreate(
  $topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!
) {{
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {{
    webhookSubscription {{ {_FIELDS} }}
    userErrors {{ field message }}
  }}
}}"""
UPDATE_MUTATION = f"""
mutation RappitWebhookUpdate($id: ID!, $webhookSubscription: WebhookSubscriptionInput!) {{
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $webhookSubscription) {{
    webhookSubscription {{ {_FIELDS} }}
    userErrors {{ field message }}
  }}
}}"""
DELETE_MUTATION = """
mutation RappitWebhookDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) {
    deletedWebhookSubscriptionId
    userErrors { field message }
  }
}"""


def topic_enum(topic: str) -> str:
    """``orders/create`` → ``ORDERS_CREATE`` (``WebhookSubscriptionTopic``)."""
    return topic.upper().replace("/", "_")


# Topics a shop may report besides Rappit's (reference/channel-apis.md §8.2), only to name
# them in reports the way Rappit names topics; one not listed keeps Shopify's enum name.
OTHER_KNOWN_TOPICS = frozenset(
    {
        "app/scopes_update",
        "bulk_operations/finish",
        "fulfillment_holds/added",
        "fulfillment_holds/released",
        "fulfillment_orders/cancellation_request_accepted",
        "fulfillment_orders/cancellation_request_rejected",
        "fulfillment_orders/cancellation_request_submitted",
        "fulfillment_orders/hold_released",
        "fulfillment_orders/moved",
        "fulfillment_orders/order_routing_complete",
        "fulfillment_orders/placed_on_hold",
        "inventory_items/create",
        "inventory_items/delete",
        "inventory_items/update",
        "inventory_levels/connect",
        "inventory_levels/disconnect",
        "locations/activate",
        "locations/create",
        "locations/deactivate",
        "locations/delete",
        "locations/update",
        "orders/delete",
        "orders/edited",
        "orders/fulfilled",
        "orders/paid",
        "orders/partially_fulfilled",
        "products/create",
        "products/delete",
        "products/update",
        "refunds/create",
        "shop/update",
    }
)
_TOPIC_BY_ENUM = {topic_enum(topic): topic for topic in TOPICS | OTHER_KNOWN_TOPICS}


def expected_address(base_url: str, topic: str) -> str:
    return f"{base_url}{WEBHOOK_PATH}{topic}"


def _normalized(address: str) -> str:
    """Scheme and host compared without regard to case, as URLs are (a Pub/Sub or EventBridge
    address, with no host, as it is)."""
    scheme, separator, rest = address.partition("://")
    if not separator:
        return address
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def is_ours(address: str, base_url: str) -> bool:
    """Whether a subscription points at this deployment: its address lies under the base URL
    (``https://rappit.example.com.evil.test/...`` does not)."""
    normalized = _normalized(address)
    return normalized == base_url or normalized.startswith(base_url + "/")


# --- what the shop reports ------------------------------------------------------------------


class Subscription(BaseModel):
    """One subscription as the shop reports it; ``topic`` in Rappit's spelling when known."""

    model_config = ConfigDict(frozen=True)

    id: str
    topic: str
    address: str
    format: str
    api_version: str
    include_fields: tuple[str, ...] = ()


def _subscription(node: dict[str, Any]) -> Subscription:
    topic = str(node.get("topic") or "")
    version = node.get("apiVersion") or {}
    return Subscription(
        id=str(node["id"]),
        topic=_TOPIC_BY_ENUM.get(topic, topic),
        address=str(node.get("uri") or ""),
        format=str(node.get("format") or ""),
        api_version=str(version.get("handle") or ""),
        include_fields=tuple(node.get("includeFields") or ()),
    )


async def list_subscriptions(client: ShopifyClient) -> list[Subscription]:
    """Every subscription of this app on the shop, across pages."""
    found: list[Subscription] = []
    after: str | None = None
    while True:
        data = await client.graphql(LIST_QUERY, {"first": PAGE_SIZE, "after": after})
        connection = data["webhookSubscriptions"]
        found += [_subscription(node) for node in connection["nodes"]]
        page = connection["pageInfo"]
        if not page["hasNextPage"]:
            return found
        after = page["endCursor"]


# --- the plan -------------------------------------------------------------------------------


class Repair(BaseModel):
    """A subscription of this deployment for a handled topic that is not as it should be."""

    topic: str
    id: str
    address: str
    problems: list[str]
    # The API version differs: the subscription is deleted and created again.
    recreate: bool


class Removal(BaseModel):
    topic: str
    id: str
    address: str
    reason: str


class AppConfigured(BaseModel):
    topic: str
    address: str
    note: str = COMPLIANCE_NOTE


@dataclass(frozen=True)
class Plan:
    base_url: str
    api_version: str
    subscriptions: tuple[Subscription, ...]
    missing: tuple[str, ...]
    repairs: tuple[Repair, ...]
    removals: tuple[Removal, ...]
    unchanged: tuple[Subscription, ...]

    @property
    def healthy(self) -> bool:
        return not (self.missing or self.repairs or self.removals)


def _problems(subscription: Subscription, address: str, api_version: str) -> list[str]:
    problems = []
    if _normalized(subscription.address) != address:
        problems.append(f"address is {subscription.address}, expected {address}")
    if subscription.format.upper() != "JSON":
        problems.append(f"format is {subscription.format}, expected JSON")
    if subscription.include_fields:
        problems.append(
            f"only the fields {', '.join(subscription.include_fields)} are sent, expected all"
        )
    if subscription.api_version != api_version:
        problems.append(f"API version is {subscription.api_version}, expected {api_version}")
    return problems


def plan_subscriptions(
    subscriptions: Sequence[Subscription], base_url: str, api_version: str
) -> Plan:
    """What it takes to bring the shop's subscriptions to Rappit's (no calls made)."""
    ours = [s for s in subscriptions if is_ours(s.address, base_url)]
    missing: list[str] = []
    repairs: list[Repair] = []
    removals: list[Removal] = []
    unchanged: list[Subscription] = []
    for topic in SUBSCRIBED_TOPICS:
        address = expected_address(base_url, topic)
        candidates = [
            (_problems(s, address, api_version), index, s)
            for index, s in enumerate(ours)
            if s.topic == topic
        ]
        if not candidates:
            missing.append(topic)
            continue
        # Keep the one closest to right (the first listed on a tie); the others go.
        problems, _, kept = min(candidates, key=lambda c: (len(c[0]), c[1]))
        for _, _, other in candidates:
            if other is not kept:
                removals.append(
                    Removal(
                        topic=topic,
                        id=other.id,
                        address=other.address,
                        reason=f"a second subscription to {topic}",
                    )
                )
        if not problems:
            unchanged.append(kept)
            continue
        repairs.append(
            Repair(
                topic=topic,
                id=kept.id,
                address=kept.address,
                problems=problems,
                recreate=kept.api_version != api_version,
            )
        )
    for s in ours:
        # Compliance topics are the app's configuration, never this code's to remove.
        if s.topic not in SUBSCRIBED_TOPICS and s.topic not in COMPLIANCE_TOPICS:
            removals.append(
                Removal(
                    topic=s.topic,
                    id=s.id,
                    address=s.address,
                    reason=f"Rappit does not handle {s.topic}",
                )
            )
    return Plan(
        base_url=base_url,
        api_version=api_version,
        subscriptions=tuple(subscriptions),
        missing=tuple(missing),
        repairs=tuple(repairs),
        removals=tuple(removals),
        unchanged=tuple(unchanged),
    )


def compliance_topics(base_url: str) -> list[AppConfigured]:
    return [
        AppConfigured(topic=topic, address=expected_address(base_url, topic))
        for topic in sorted(COMPLIANCE_TOPICS)
    ]


# --- carrying it out ------------------------------------------------------------------------


class Updated(BaseModel):
    topic: str
    id: str
    address: str
    problems: list[str]
    recreated: bool = False
    # The id before a recreation.
    previous_id: str | None = None


class RegistrationError(BaseModel):
    topic: str
    operation: Literal["create", "update", "delete"]
    subscription_id: str | None
    message: str
    # Whether running the registration again later can help.
    retryable: bool


class RegistrationReport(BaseModel):
    base_url: str
    api_version: str
    created: list[Subscription] = []
    updated: list[Updated] = []
    deleted: list[Removal] = []
    unchanged: list[Subscription] = []
    configured_in_app: list[AppConfigured] = []
    errors: list[RegistrationError] = []

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


class _Stop(Exception):
    """A call failed as a whole (the shop unreachable, the token refused): the rest of the plan
    would fail the same way."""


class _Executor:
    def __init__(self, client: ShopifyClient, report: RegistrationReport) -> None:
        self.client = client
        self.report = report

    def _fail(
        self,
        topic: str,
        operation: Literal["create", "update", "delete"],
        subscription_id: str | None,
        message: str,
        *,
        retryable: bool = False,
    ) -> None:
        self.report.errors.append(
            RegistrationError(
                topic=topic,
                operation=operation,
                subscription_id=subscription_id,
                message=message,
                retryable=retryable,
            )
        )

    async def _call(
        self,
        query: str,
        variables: dict[str, Any],
        root: str,
        topic: str,
        operation: Literal["create", "update", "delete"],
        subscription_id: str | None,
    ) -> dict[str, Any] | None:
        """The mutation's payload, or None after recording its user errors."""
        try:
            # A create is repeated only after errors proving it never arrived: a lost answer
            # to one that did arrive would otherwise make a second subscription.
            data = await self.client.graphql(query, variables, idempotent=operation != "create")
        except ShopifyError as exc:
            self._fail(topic, operation, subscription_id, str(exc), retryable=exc.retryable)
            raise _Stop from exc
        payload: dict[str, Any] = data[root]
        errors = payload.get("userErrors") or []
        if errors:
            message = "; ".join(str(error.get("message")) for error in errors)
            self._fail(topic, operation, subscription_id, message)
            return None
        return payload

    async def delete(self, topic: str, subscription_id: str) -> bool:
        payload = await self._call(
            DELETE_MUTATION,
            {"id": subscription_id},
            "webhookSubscriptionDelete",
            topic,
            "delete",
            subscription_id,
        )
        return payload is not None

    async def create(self, topic: str, address: str) -> Subscription | None:
        payload = await self._call(
            CREATE_MUTATION,
            {
                "topic": topic_enum(topic),
                "webhookSubscription": {"uri": address, "format": "JSON"},
            },
            "webhookSubscriptionCreate",
            topic,
            "create",
            None,
        )
        return None if payload is None else _subscription(payload["webhookSubscription"])

    async def update(self, topic: str, subscription_id: str, address: str) -> Subscription | None:
        payload = await self._call(
            UPDATE_MUTATION,
            {
                "id": subscription_id,
                "webhookSubscription": {"uri": address, "format": "JSON", "includeFields": []},
            },
            "webhookSubscriptionUpdate",
            topic,
            "update",
            subscription_id,
        )
        return None if payload is None else _subscription(payload["webhookSubscription"])

    async def run(self, plan: Plan) -> None:
        # Removals first: a duplicate may hold the address a repair moves another one to.
        for removal in plan.removals:
            if await self.delete(removal.topic, removal.id):
                self.report.deleted.append(removal)
        for repair in plan.repairs:
            address = expected_address(plan.base_url, repair.topic)
            if repair.recreate:
                if not await self.delete(repair.topic, repair.id):
                    continue
                made = await self.create(repair.topic, address)
            else:
                made = await self.update(repair.topic, repair.id, address)
            if made is None:
                continue
            self._check_version(made, plan.api_version)
            self.report.updated.append(
                Updated(
                    topic=repair.topic,
                    id=made.id,
                    address=made.address,
                    problems=repair.problems,
                    recreated=repair.recreate,
                    previous_id=repair.id if repair.recreate else None,
                )
            )
        for topic in plan.missing:
            made = await self.create(topic, expected_address(plan.base_url, topic))
            if made is not None:
                self._check_version(made, plan.api_version)
                self.report.created.append(made)

    def _check_version(self, made: Subscription, api_version: str) -> None:
        # Shopify serves a retired version as the oldest supported one; subscriptions then
        # carry that version, and every run would find them wrong again.
        if made.api_version != api_version:
            self._fail(
                made.topic,
                "create",
                made.id,
                f"Shopify gave the subscription API version {made.api_version}, not the "
                f"channel's {api_version}: set the channel's api_version to a supported version",
            )


def _check_api_version(api_version: str) -> None:
    if api_version != "unstable" and api_version < MIN_API_VERSION:
        raise InvalidInput(
            f"webhook registration needs Shopify API version {MIN_API_VERSION} or later; the "
            f"channel uses {api_version}: change its api_version"
        )


async def register_webhooks(client: ShopifyClient, base_url: str) -> RegistrationReport:
    """Bring the shop's subscriptions to what Rappit handles (see the module's docstring).
    A failure to list raises ``ShopifyError``; failures of single changes are in the report."""
    _check_api_version(client.api_version)
    plan = plan_subscriptions(await list_subscriptions(client), base_url, client.api_version)
    report = RegistrationReport(
        base_url=base_url,
        api_version=client.api_version,
        unchanged=list(plan.unchanged),
        configured_in_app=compliance_topics(base_url),
    )
    # A stop is recorded in the report; a later run goes on from what the shop then has.
    with contextlib.suppress(_Stop):
        await _Executor(client, report).run(plan)
    return report


# --- health ---------------------------------------------------------------------------------


class ListedSubscription(Subscription):
    ours: bool


class WebhookHealth(BaseModel):
    healthy: bool
    base_url: str
    api_version: str
    expected: list[str]
    subscriptions: list[ListedSubscription]
    missing: list[str]
    wrong: list[Repair]
    stale: list[Removal]
    configured_in_app: list[AppConfigured]


async def webhook_health(client: ShopifyClient, base_url: str) -> WebhookHealth:
    """The shop's subscriptions and what a registration would change (nothing is changed)."""
    _check_api_version(client.api_version)
    plan = plan_subscriptions(await list_subscriptions(client), base_url, client.api_version)
    return WebhookHealth(
        healthy=plan.healthy,
        base_url=base_url,
        api_version=client.api_version,
        expected=list(SUBSCRIBED_TOPICS),
        subscriptions=[
            ListedSubscription(**s.model_dump(), ours=is_ours(s.address, base_url))
            for s in plan.subscriptions
        ],
        missing=list(plan.missing),
        wrong=list(plan.repairs),
        stale=list(plan.removals),
        configured_in_app=compliance_topics(base_url),
    )


# --- stored channels --------------------------------------------------------------------------


class WebhookBaseUrlNotSet(Conflict):
    code = "webhook_base_url_not_set"


class ChannelDisconnected(Conflict):
    code = "channel_disconnected"


class UnsupportedChannelType(InvalidInput):
    code = "unsupported_channel_type"


class ShopifyUnavailable(RappitError):
    """The shop could not be asked (unreachable, token refused...): 502, with Shopify's answer
    (never a credential) in the detail."""

    status_code = 502
    code = "shopify_error"


BASE_URL_NOT_SET = (
    "RAPPIT_WEBHOOK_BASE_URL is not set: set it to the public URL Shopify reaches this "
    "deployment at (for example https://rappit.example.com); subscriptions then point at "
    "{RAPPIT_WEBHOOK_BASE_URL}/webhooks/shopify/{topic}"
)


@dataclass(frozen=True)
class WebhookRegistrar:
    """Registration and health for stored channels: checks the channel and the setting, builds
    the channel's client (sharing the shop's rate-limit bucket) and runs."""

    secret_box: SecretBox
    limiter: SharedLeakyBucket
    base_url: str | None
    # Options of the Shopify client, e.g. fewer retries where a person waits for the answer.
    client_options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def for_runtime(cls, runtime: Runtime, **client_options: Any) -> WebhookRegistrar:
        if runtime.queue is None:
            raise ConfigurationError(
                "webhook registration needs Redis (the shop's rate limit is shared through it)"
            )
        return cls(
            runtime.secret_box,
            SharedLeakyBucket(
                runtime.queue.redis, key_prefix=f"{runtime.settings.queue_prefix}:ratelimit"
            ),
            runtime.settings.webhook_base_url,
            tuple(client_options.items()),
        )

    def ready(self, channel: Channel) -> str:
        """The base URL, once the channel can be registered (an error saying why not)."""
        if channel.type != ChannelType.SHOPIFY:
            raise UnsupportedChannelType(
                f"webhook registration is for Shopify channels; this one is {channel.type}"
            )
        if channel.status != ChannelStatus.ACTIVE:
            raise ChannelDisconnected(
                f"channel '{channel.id}' is {channel.status}: reconnect it before registering "
                "its webhooks"
            )
        if not self.base_url:
            raise WebhookBaseUrlNotSet(BASE_URL_NOT_SET)
        return self.base_url

    def client(self, channel: Channel) -> ShopifyClient:
        return ShopifyClient.for_channel(
            channel,
            credentials_of(channel, self.secret_box),
            self.limiter,
            **dict(self.client_options),
        )

    async def _run(self, channel: Channel, run: Callable[[ShopifyClient, str], Awaitable[T]]) -> T:
        base_url = self.ready(channel)
        async with self.client(channel) as client:
            try:
                return await run(client, base_url)
            except ShopifyError as exc:
                raise ShopifyUnavailable(f"Shopify could not be asked: {exc}") from exc

    async def register(self, channel: Channel) -> RegistrationReport:
        return await self._run(channel, register_webhooks)

    async def health(self, channel: Channel) -> WebhookHealth:
        return await self._run(channel, webhook_health)


def register_handler(
    sessionmaker: async_sessionmaker[AsyncSession], registrar: WebhookRegistrar
) -> Handler:
    """The ``channel.register-webhooks`` job (``rappit.channels.tasks``)."""

    async def handle(context: JobContext) -> dict[str, object]:
        try:
            organization_id = uuid.UUID(str(context.data["organization_id"]))
            channel_id = uuid.UUID(str(context.data["channel_id"]))
        except (KeyError, ValueError) as exc:
            raise PermanentJobError(f"job data is not a channel reference: {exc}") from exc
        # Read, then let the connection go before calling the shop.
        async with sessionmaker() as session:
            try:
                channel = await get_channel(session, organization_id, channel_id)
            except NotFound:
                return {"status": "skipped", "reason": "the channel no longer exists"}
        try:
            report = await registrar.register(channel)
        except (UnsupportedChannelType, ChannelDisconnected, WebhookBaseUrlNotSet) as exc:
            # Not a failure: a deployment may keep its subscriptions in the app's configuration.
            logger.warning("webhooks of channel %s not registered: %s", channel_id, exc.detail)
            return {"status": "skipped", "reason": exc.detail}
        except InvalidInput as exc:  # the channel's API version is too old
            raise PermanentJobError(exc.detail) from exc
        except ShopifyUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, ShopifyError) and not cause.retryable:
                raise PermanentJobError(exc.detail) from exc
            raise
        summary: dict[str, object] = {
            "status": "completed",
            "created": len(report.created),
            "updated": len(report.updated),
            "deleted": len(report.deleted),
            "unchanged": len(report.unchanged),
        }
        if report.errors:
            message = "; ".join(f"{e.operation} {e.topic}: {e.message}" for e in report.errors)
            if any(error.retryable for error in report.errors):
                # Another attempt goes on from what the shop then has.
                raise RuntimeError(f"webhook registration incomplete: {message}")
            raise PermanentJobError(f"webhook registration failed: {message}")
        logger.info("webhooks of channel %s registered: %s", channel_id, summary)
        return summary

    return handle
