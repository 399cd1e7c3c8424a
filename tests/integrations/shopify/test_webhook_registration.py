"""Registering a shop's webhook subscriptions against the simulated Shopify over real HTTP: the
first run creates exactly the handled topics, a second changes nothing; deleted, wrong and stale
subscriptions are repaired or removed while other deployments' are left alone; the health
check, the routes, the job a new channel gets, the CLI, and the errors when the base URL is
missing, the channel disconnected or the shop unreachable."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from rappit.app import create_app
from rappit.channels.tasks import REGISTER_WEBHOOKS_JOB
from rappit.cli import app as cli_app
from rappit.config import Settings
from rappit.integrations.shopify.webhook_registration import (
    ChannelDisconnected,
    ShopifyUnavailable,
    Subscription,
    WebhookBaseUrlNotSet,
    WebhookRegistrar,
    plan_subscriptions,
    register_handler,
)
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.kit.ratelimit import SharedLeakyBucket
from rappit.models import Channel, ChannelStatus, ChannelType
from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext, PermanentJobError, QueueWorker, WorkerOptions
from rappit.runtime import Runtime
from rappit.sandbox.shopify.server import SandboxServer
from rappit.wiring import handler_registry
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import TEST_SECRET_KEY
from tests.support.waiting import wait_until

BASE = "https://rappit.example.com"
VERSION = "2026-10"
TOKEN = "shpat_registration"
# What Rappit handles and a shop can be subscribed to through the API (compliance topics not).
HANDLED = [
    "app/uninstalled",
    "fulfillments/create",
    "fulfillments/update",
    "inventory_levels/update",
    "orders/cancelled",
    "orders/create",
    "orders/updated",
]
CONFIGURED_IN_APP = [
    ("customers/data_request", f"{BASE}/webhooks/shopify/customers/data_request"),
    ("customers/redact", f"{BASE}/webhooks/shopify/customers/redact"),
    ("shop/redact", f"{BASE}/webhooks/shopify/shop/redact"),
]
BASE_URL_NOT_SET = (
    "RAPPIT_WEBHOOK_BASE_URL is not set: set it to the public URL Shopify reaches this "
    "deployment at (for example https://rappit.example.com); subscriptions then point at "
    "{RAPPIT_WEBHOOK_BASE_URL}/webhooks/shopify/{topic}"
)


def _address(topic: str) -> str:
    return f"{BASE}/webhooks/shopify/{topic}"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def domain(sandbox: SandboxServer) -> str:
    name = f"reg-{uuid.uuid4().hex[:10]}.myshopify.com"
    sandbox.call(lambda: sandbox.state.create_shop(name, access_token=TOKEN))
    return name


async def _channel(
    database: TestDatabase,
    tenant: Tenant,
    domain: str,
    api_base_url: str,
    *,
    token: str = TOKEN,
    status: ChannelStatus = ChannelStatus.ACTIVE,
) -> Channel:
    async with unit_of_work(database.sessionmaker) as session:
        channel = Channel(
            organization_id=tenant.organization_id,
            type=ChannelType.SHOPIFY,
            name="Registered shop",
            shop_domain=domain,
            api_version=VERSION,
            api_base_url=api_base_url,
            status=status,
            credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
                {"access_token": token, "webhook_secret": "shpss_registration"}
            ),
            settings={},
            sync_cursors={},
        )
        session.add(channel)
    return channel


@pytest.fixture
async def channel(
    database: TestDatabase, tenant: Tenant, sandbox: SandboxServer, domain: str
) -> Channel:
    return await _channel(database, tenant, domain, sandbox.shop_url(domain))


def _registrar(
    queue_client: QueueClient, base_url: str | None = BASE, **options: Any
) -> WebhookRegistrar:
    limiter = SharedLeakyBucket(queue_client.redis, key_prefix=f"{queue_client.prefix}:ratelimit")
    return WebhookRegistrar(SecretBox(TEST_SECRET_KEY), limiter, base_url, tuple(options.items()))


@pytest.fixture
def registrar(queue_client: QueueClient) -> WebhookRegistrar:
    return _registrar(queue_client)


class Shop:
    """The sandbox shop's Admin API, as another party (the merchant, another deployment)."""

    def __init__(self, sandbox: SandboxServer, domain: str) -> None:
        self.base = f"{sandbox.shop_url(domain)}/admin/api"
        self.headers = {"X-Shopify-Access-Token": TOKEN}

    def rest(self, method: str, path: str, *, version: str = VERSION, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{self.base}/{version}/{path}", headers=self.headers, **kwargs
        )
        assert response.status_code < 300, response.text
        return response.json()

    def hooks(self) -> list[tuple[str, str, str, str, list[str]]]:
        hooks = self.rest("GET", "webhooks.json", params={"limit": 250})["webhooks"]
        return sorted(
            (h["topic"], h["address"], h["format"], h["api_version"], h["fields"]) for h in hooks
        )

    def hook_id(self, topic: str, address: str) -> int:
        hooks = self.rest("GET", "webhooks.json", params={"topic": topic, "address": address})
        [hook] = hooks["webhooks"]
        return int(hook["id"])

    def subscribe(self, topic: str, address: str, *, version: str = VERSION) -> int:
        body = {"webhook": {"topic": topic, "address": address, "format": "json"}}
        return int(self.rest("POST", "webhooks.json", json=body, version=version)["webhook"]["id"])

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.rest(
            "POST", "graphql.json", json={"query": query, "variables": variables}
        )
        return result


@pytest.fixture
def shop(sandbox: SandboxServer, domain: str) -> Shop:
    return Shop(sandbox, domain)


def _all_correct() -> list[tuple[str, str, str, str, list[str]]]:
    return [(topic, _address(topic), "json", VERSION, []) for topic in HANDLED]


# --- registration -----------------------------------------------------------------------------


async def test_first_run_creates_the_handled_topics_and_a_second_changes_nothing(
    registrar: WebhookRegistrar, channel: Channel, shop: Shop
) -> None:
    first = await registrar.register(channel)

    assert [(s.topic, s.address, s.format, s.api_version) for s in first.created] == [
        (topic, _address(topic), "JSON", VERSION) for topic in HANDLED
    ]
    assert (first.updated, first.deleted, first.unchanged, first.errors) == ([], [], [], [])
    assert [(c.topic, c.address) for c in first.configured_in_app] == CONFIGURED_IN_APP
    assert (first.base_url, first.api_version) == (BASE, VERSION)
    assert shop.hooks() == _all_correct()

    second = await registrar.register(channel)

    assert (second.created, second.updated, second.deleted, second.errors) == ([], [], [], [])
    assert [s.id for s in second.unchanged] == [s.id for s in first.created]
    assert shop.hooks() == _all_correct()


async def test_a_subscription_deleted_in_the_shop_is_reported_then_repaired(
    registrar: WebhookRegistrar, channel: Channel, shop: Shop
) -> None:
    await registrar.register(channel)
    shop.rest("DELETE", f"webhooks/{shop.hook_id('orders/create', _address('orders/create'))}.json")

    before = await registrar.health(channel)
    assert (before.healthy, before.missing, before.wrong, before.stale) == (
        False,
        ["orders/create"],
        [],
        [],
    )

    repaired = await registrar.register(channel)

    assert [(s.topic, s.address) for s in repaired.created] == [
        ("orders/create", _address("orders/create"))
    ]
    assert (repaired.updated, repaired.deleted, len(repaired.unchanged)) == ([], [], 6)
    assert (await registrar.health(channel)).healthy is True
    assert shop.hooks() == _all_correct()


async def test_wrong_address_format_fields_and_version_are_fixed(
    registrar: WebhookRegistrar, channel: Channel, shop: Shop
) -> None:
    await registrar.register(channel)
    # An address of this deployment that is not the topic's.
    legacy = f"{BASE}/webhooks/shopify/legacy"
    updated_id = shop.hook_id("orders/updated", _address("orders/updated"))
    shop.rest("PUT", f"webhooks/{updated_id}.json", json={"webhook": {"address": legacy}})
    # The right address, created at an older API version.
    fulfillments = shop.hook_id("fulfillments/create", _address("fulfillments/create"))
    shop.rest("DELETE", f"webhooks/{fulfillments}.json")
    old_id = shop.subscribe(
        "fulfillments/create", _address("fulfillments/create"), version="2025-07"
    )
    # XML and a field list.
    uninstalled = shop.hook_id("app/uninstalled", _address("app/uninstalled"))
    changed = shop.graphql(
        "mutation($id: ID!, $s: WebhookSubscriptionInput!) { webhookSubscriptionUpdate(id: $id,"
        " webhookSubscription: $s) { userErrors { message } } }",
        {
            "id": f"gid://shopify/WebhookSubscription/{uninstalled}",
            "s": {"format": "XML", "includeFields": ["id", "domain"]},
        },
    )
    assert changed["data"]["webhookSubscriptionUpdate"]["userErrors"] == []

    health = await registrar.health(channel)
    assert health.healthy is False
    assert [(w.topic, w.problems, w.recreate) for w in health.wrong] == [
        (
            "app/uninstalled",
            ["format is XML, expected JSON", "only the fields id, domain are sent, expected all"],
            False,
        ),
        ("fulfillments/create", ["API version is 2025-07, expected 2026-10"], True),
        ("orders/updated", [f"address is {legacy}, expected {_address('orders/updated')}"], False),
    ]

    report = await registrar.register(channel)

    assert [(u.topic, u.recreated, u.previous_id) for u in report.updated] == [
        ("app/uninstalled", False, None),
        ("fulfillments/create", True, f"gid://shopify/WebhookSubscription/{old_id}"),
        ("orders/updated", False, None),
    ]
    by_topic = {u.topic: u for u in report.updated}
    assert by_topic["orders/updated"].id == f"gid://shopify/WebhookSubscription/{updated_id}"
    assert by_topic["fulfillments/create"].id != f"gid://shopify/WebhookSubscription/{old_id}"
    assert (report.created, report.deleted, len(report.unchanged), report.errors) == (
        [],
        [],
        4,
        [],
    )
    assert shop.hooks() == _all_correct()

    again = await registrar.register(channel)
    assert (again.created, again.updated, again.deleted, len(again.unchanged)) == ([], [], [], 7)


async def test_stale_ones_of_this_deployment_go_and_other_deployments_stay(
    registrar: WebhookRegistrar, channel: Channel, shop: Shop
) -> None:
    exact = shop.subscribe("orders/create", _address("orders/create"))
    duplicate = shop.subscribe("orders/create", f"{BASE}/webhooks/shopify/orders/create/old")
    unhandled = shop.subscribe("orders/paid", _address("orders/paid"))
    elsewhere = "https://staging.example.com/webhooks/shopify/orders/create"
    lookalike = "https://rappit.example.com.evil.test/webhooks/shopify/orders/paid"
    shop.subscribe("orders/create", elsewhere)
    shop.subscribe("orders/paid", lookalike)

    report = await registrar.register(channel)

    assert [(d.topic, d.id, d.reason) for d in report.deleted] == [
        (
            "orders/create",
            f"gid://shopify/WebhookSubscription/{duplicate}",
            "a second subscription to orders/create",
        ),
        (
            "orders/paid",
            f"gid://shopify/WebhookSubscription/{unhandled}",
            "Rappit does not handle orders/paid",
        ),
    ]
    assert [s.id for s in report.unchanged] == [f"gid://shopify/WebhookSubscription/{exact}"]
    assert [s.topic for s in report.created] == [t for t in HANDLED if t != "orders/create"]
    assert shop.hooks() == sorted(
        [
            *_all_correct(),
            ("orders/create", elsewhere, "json", VERSION, []),
            ("orders/paid", lookalike, "json", VERSION, []),
        ]
    )

    health = await registrar.health(channel)
    assert health.healthy is True
    assert sorted((s.address, s.ours) for s in health.subscriptions if not s.ours) == [
        (lookalike, False),
        (elsewhere, False),
    ]
    assert len(health.subscriptions) == 9


def test_the_plan_keeps_the_closest_duplicate_and_never_removes_compliance_topics() -> None:
    def listed(id_: int, topic: str, address: str, version: str = VERSION) -> Subscription:
        return Subscription(
            id=str(id_), topic=topic, address=address, format="JSON", api_version=version
        )

    plan = plan_subscriptions(
        [
            listed(1, "orders/create", f"{BASE}/webhooks/shopify/x", version="2025-10"),
            listed(2, "orders/create", f"{BASE}/webhooks/shopify/y"),
            listed(3, "customers/redact", _address("customers/redact")),
            # Host and scheme are compared without regard to case.
            listed(
                4, "app/uninstalled", "HTTPS://Rappit.Example.com/webhooks/shopify/app/uninstalled"
            ),
            # Addresses with no host (Pub/Sub, EventBridge) are never this deployment's.
            listed(5, "ORDERS_PAID", "pubsub://project:topic"),
            listed(6, "orders/paid", "arn:aws:events:us-east-1::event-source/aws.partner/x"),
        ],
        BASE,
        VERSION,
    )

    assert [(r.id, r.problems) for r in plan.repairs] == [
        ("2", [f"address is {BASE}/webhooks/shopify/y, expected {_address('orders/create')}"])
    ]
    assert [(r.id, r.reason) for r in plan.removals] == [
        ("1", "a second subscription to orders/create")
    ]
    assert [s.id for s in plan.unchanged] == ["4"]
    assert plan.missing == tuple(
        t for t in HANDLED if t not in ("orders/create", "app/uninstalled")
    )


# --- errors -----------------------------------------------------------------------------------


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/shops/away.myshopify.com"


async def test_refusals_name_what_to_do(
    queue_client: QueueClient, database: TestDatabase, tenant: Tenant, channel: Channel
) -> None:
    with pytest.raises(WebhookBaseUrlNotSet) as missing:
        await _registrar(queue_client, None).register(channel)
    assert (missing.value.status_code, missing.value.detail) == (409, BASE_URL_NOT_SET)

    gone = await _channel(
        database,
        tenant,
        "gone.myshopify.com",
        _closed_port_url(),
        status=ChannelStatus.DISCONNECTED,
    )
    with pytest.raises(ChannelDisconnected) as disconnected:
        await _registrar(queue_client).register(gone)
    assert disconnected.value.detail == (
        f"channel '{gone.id}' is disconnected: reconnect it before registering its webhooks"
    )


def test_the_base_url_setting_is_checked() -> None:
    assert Settings(webhook_base_url="https://Rappit.Example.com/hub/").webhook_base_url == (
        "https://rappit.example.com/hub"
    )
    assert Settings(webhook_base_url=" ").webhook_base_url is None
    for bad in ("rappit.example.com", "ftp://rappit.example.com", "https://x.example/?a=1"):
        with pytest.raises(ValidationError):
            Settings(webhook_base_url=bad)


# --- routes -----------------------------------------------------------------------------------


def _with_base_url(runtime: Runtime, base_url: str | None) -> Runtime:
    settings = runtime.settings.model_copy(update={"webhook_base_url": base_url})
    return dataclasses.replace(runtime, settings=settings)


async def _client(runtime: Runtime) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    return httpx.AsyncClient(transport=transport, base_url="http://rappit.test")


async def test_health_and_register_routes(
    queue_runtime: Runtime,
    channel: Channel,
    tenant: Tenant,
    other_tenant: Tenant,
    shop: Shop,
) -> None:
    async with await _client(_with_base_url(queue_runtime, BASE)) as api:
        path = f"/api/v1/channels/{channel.id}/webhooks"
        before = await api.get(f"{path}/health", headers=tenant.headers)
        assert before.status_code == 200, before.text
        assert (before.json()["healthy"], before.json()["missing"]) == (False, HANDLED)
        assert before.json()["expected"] == HANDLED

        for method, route in (("get", "health"), ("post", "register")):
            other = await api.request(method, f"{path}/{route}", headers=other_tenant.headers)
            assert other.status_code == 404, other.text
        assert shop.hooks() == []

        registered = await api.post(f"{path}/register", headers=tenant.headers)
        assert registered.status_code == 200, registered.text
        body = registered.json()
        assert [(c["topic"], c["address"]) for c in body["created"]] == [
            (topic, _address(topic)) for topic in HANDLED
        ]
        assert [c["topic"] for c in body["configured_in_app"]] == [
            topic for topic, _ in CONFIGURED_IN_APP
        ]

        after = (await api.get(f"{path}/health", headers=tenant.headers)).json()
        assert (after["healthy"], after["missing"], after["wrong"], after["stale"]) == (
            True,
            [],
            [],
            [],
        )
        assert sorted((s["topic"], s["address"], s["ours"]) for s in after["subscriptions"]) == [
            (topic, _address(topic), True) for topic in HANDLED
        ]


async def test_routes_refuse_without_base_url_when_disconnected_or_unreachable(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant, channel: Channel
) -> None:
    async with await _client(_with_base_url(queue_runtime, None)) as api:
        for method, route in (("get", "health"), ("post", "register")):
            response = await api.request(
                method, f"/api/v1/channels/{channel.id}/webhooks/{route}", headers=tenant.headers
            )
            assert response.status_code == 409
            assert response.json() == {
                "error": "webhook_base_url_not_set",
                "detail": BASE_URL_NOT_SET,
            }

    disconnected = await _channel(
        database, tenant, "off.myshopify.com", _closed_port_url(), status=ChannelStatus.DISCONNECTED
    )
    away = await _channel(database, tenant, "away.myshopify.com", _closed_port_url())
    async with await _client(_with_base_url(queue_runtime, BASE)) as api:
        refused = await api.post(
            f"/api/v1/channels/{disconnected.id}/webhooks/register", headers=tenant.headers
        )
        assert (refused.status_code, refused.json()["error"]) == (409, "channel_disconnected")

        unreachable = await api.post(
            f"/api/v1/channels/{away.id}/webhooks/register", headers=tenant.headers
        )
        assert (unreachable.status_code, unreachable.json()["error"]) == (502, "shopify_error")
        assert unreachable.json()["detail"].startswith("Shopify could not be asked: ")


# --- the job a new channel gets -----------------------------------------------------------------


def _job(channel_id: str, organization_id: uuid.UUID) -> JobContext:
    return JobContext(
        QueueName.CHANNEL_SYNC,
        REGISTER_WEBHOOKS_JOB,
        f"channel-webhooks.{channel_id}",
        {"organization_id": str(organization_id), "channel_id": channel_id},
        1,
        5,
    )


async def test_a_new_channel_gets_a_registration_job_that_registers(
    queue_runtime: Runtime,
    queue_client: QueueClient,
    tenant: Tenant,
    sandbox: SandboxServer,
    domain: str,
    shop: Shop,
) -> None:
    runtime = _with_base_url(queue_runtime, BASE)
    async with await _client(runtime) as api:
        created = await api.post(
            "/api/v1/channels",
            json={
                "type": "shopify",
                "name": "New shop",
                "shop_domain": domain,
                "access_token": TOKEN,
                "webhook_secret": "shpss_new",
                "api_base_url": sandbox.shop_url(domain),
            },
            headers=tenant.headers,
        )
        assert created.status_code == 201, created.text
        # A shop that cannot be reached does not hold the creation up: nothing calls it yet.
        away = await api.post(
            "/api/v1/channels",
            json={
                "type": "shopify",
                "name": "Away",
                "shop_domain": "away.myshopify.com",
                "access_token": TOKEN,
                "webhook_secret": "shpss_away",
                "api_base_url": _closed_port_url(),
            },
            headers=tenant.headers,
        )
        assert away.status_code == 201, away.text
    channel_id = created.json()["id"]
    assert shop.hooks() == []

    job = await queue_client.get_job(QueueName.CHANNEL_SYNC, f"channel-webhooks.{channel_id}")
    assert job is not None
    assert (job.name, job.data) == (
        REGISTER_WEBHOOKS_JOB,
        {"organization_id": str(tenant.organization_id), "channel_id": channel_id},
    )
    away_job = f"channel-webhooks.{away.json()['id']}"
    assert await queue_client.get_job(QueueName.CHANNEL_SYNC, away_job) is not None

    handler = handler_registry(runtime).for_queue(QueueName.CHANNEL_SYNC)[REGISTER_WEBHOOKS_JOB]
    result = await handler(_job(channel_id, tenant.organization_id))

    assert result == {
        "status": "completed",
        "created": 7,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
    }
    assert shop.hooks() == _all_correct()


async def test_a_change_the_subscriptions_depend_on_registers_them_again(
    queue_runtime: Runtime,
    queue_client: QueueClient,
    tenant: Tenant,
    channel: Channel,
    shop: Shop,
) -> None:
    """A new API version (or address, or token) asks for a registration again, also after an
    earlier one finished and is kept; a rename or new settings do not."""
    runtime = _with_base_url(queue_runtime, BASE)
    job_id = f"channel-webhooks.{channel.id}"
    handlers = handler_registry(runtime).for_queue(QueueName.CHANNEL_SYNC)
    path = f"/api/v1/channels/{channel.id}"

    async def state() -> str:
        return await queue_client.job_state(QueueName.CHANNEL_SYNC, job_id)

    async def run_registration() -> None:
        worker = QueueWorker(
            QueueName.CHANNEL_SYNC,
            {REGISTER_WEBHOOKS_JOB: handlers[REGISTER_WEBHOOKS_JOB]},
            queue_client,
            WorkerOptions(concurrency=1, lock_duration_ms=5000, stalled_interval_ms=5000),
        )
        worker.start()
        try:
            await wait_until(lambda: _is_completed(state), message="registration completed")
        finally:
            await worker.close(timeout_s=5)

    async with await _client(runtime) as api:
        for unrelated in ({"name": "Renamed"}, {"settings": {"reserve_on_authorized": True}}):
            response = await api.patch(path, json=unrelated, headers=tenant.headers)
            assert response.status_code == 200, response.text
        assert await queue_client.get_job(QueueName.CHANNEL_SYNC, job_id) is None

        response = await api.patch(path, json={"api_version": "2026-07"}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert await state() == "waiting"
        await run_registration()
        assert shop.hooks() == [
            (topic, _address(topic), "json", "2026-07", []) for topic in HANDLED
        ]

        # The finished job is kept under the same id; the next change still gets its own run.
        response = await api.patch(path, json={"api_version": VERSION}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert await state() == "waiting"
        await run_registration()
    assert shop.hooks() == _all_correct()


async def _is_completed(state: Callable[[], Awaitable[str]]) -> bool:
    return await state() == "completed"


async def test_the_job_skips_without_base_url_and_fails_as_the_shop_answers(
    queue_runtime: Runtime,
    queue_client: QueueClient,
    database: TestDatabase,
    tenant: Tenant,
    channel: Channel,
    sandbox: SandboxServer,
) -> None:
    skipped = await handler_registry(_with_base_url(queue_runtime, None)).for_queue(
        QueueName.CHANNEL_SYNC
    )[REGISTER_WEBHOOKS_JOB](_job(str(channel.id), tenant.organization_id))
    assert skipped == {"status": "skipped", "reason": BASE_URL_NOT_SET}

    # Unreachable: retried by the queue (a plain error); a refused token: no retry can help.
    away = await _channel(database, tenant, "away.myshopify.com", _closed_port_url())
    once = register_handler(queue_runtime.sessionmaker, _registrar(queue_client, max_retries=0))
    with pytest.raises(ShopifyUnavailable):
        await once(_job(str(away.id), tenant.organization_id))
    domain = f"reg-{uuid.uuid4().hex[:10]}.myshopify.com"
    sandbox.call(lambda: sandbox.state.create_shop(domain, access_token=TOKEN))
    refused = await _channel(
        database, tenant, domain, sandbox.shop_url(domain), token="shpat_wrong"
    )
    with pytest.raises(PermanentJobError):
        await once(_job(str(refused.id), tenant.organization_id))


# --- CLI --------------------------------------------------------------------------------------


async def test_cli_registers_a_channel_by_shop_domain(
    tmp_path: Path,
    database: TestDatabase,
    redis_url: str,
    queue_client: QueueClient,
    channel: Channel,
    shop: Shop,
) -> None:
    env = {
        "RAPPIT_DATA_DIR": str(tmp_path / "data"),
        "RAPPIT_DATABASE_URL": database.url,
        "RAPPIT_REDIS_URL": redis_url,
        "RAPPIT_QUEUE_PREFIX": queue_client.prefix,
        "RAPPIT_SECRET_KEY": TEST_SECRET_KEY,
        "RAPPIT_ENV": None,
        "COLUMNS": "200",
    }
    args = ["webhooks", "register", channel.shop_domain]
    missing = await asyncio.to_thread(
        CliRunner(env={**env, "RAPPIT_WEBHOOK_BASE_URL": None}).invoke, cli_app, args
    )
    assert missing.exit_code == 1
    assert " ".join(missing.stderr.split()) == f"error: {BASE_URL_NOT_SET}"

    runner = CliRunner(env={**env, "RAPPIT_WEBHOOK_BASE_URL": BASE})
    first = await asyncio.to_thread(runner.invoke, cli_app, args)
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0] == (
        f"Webhooks of Registered shop ({channel.shop_domain}) at {BASE}: "
        "7 created, 0 updated, 0 deleted, 0 unchanged"
    )
    assert lines[1:8] == [f"  created  {topic}  {_address(topic)}" for topic in HANDLED]
    assert shop.hooks() == _all_correct()

    second = await asyncio.to_thread(runner.invoke, cli_app, args)
    assert second.stdout.splitlines()[0].endswith("0 created, 0 updated, 0 deleted, 7 unchanged")
