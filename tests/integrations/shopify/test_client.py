"""The Shopify Admin API client against fake shops (httpx ``MockTransport`` and an in-process
ASGI app), with its rate-limit bucket on real Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from rappit.channels.service import ChannelCredentials
from rappit.integrations.shopify.client import ShopifyClient, is_mutation
from rappit.integrations.shopify.errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyGraphQLError,
    ShopifyNetworkError,
    ShopifyNotFound,
    ShopifyRequestError,
    ShopifyServerError,
    ShopifyShopUnavailable,
    ShopifyThrottled,
)
from rappit.kit.ratelimit import SharedCostBucket, SharedLeakyBucket
from rappit.models import Channel, ChannelType
from rappit.queues.connection import create_client

SHOP = "acme.myshopify.com"
# Loopback only: the mock transports never connect, and nothing here may reach the internet.
BASE = "http://127.0.0.1:9"
TOKEN = "shpat_" + "7f3c" * 8
API = "/admin/api/2026-10"

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = create_client(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    prefix = f"test-shopify-client-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=10_000)]
    if keys:
        await redis.delete(*keys)


class RecordingCostBucket(SharedCostBucket):
    """The real GraphQL points bucket, noting the penalties it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.penalties: list[tuple[str, float]] = []

    async def penalize(self, shop: str, retry_after_s: float) -> float:
        blocked = await super().penalize(shop, retry_after_s)
        self.penalties.append((shop, retry_after_s))
        return blocked


class RecordingBucket(SharedLeakyBucket):
    """The real shared bucket, noting the penalties it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.penalties: list[tuple[str, float]] = []
        self.penalized = asyncio.Event()

    async def penalize(self, shop: str, retry_after_s: float) -> float:
        blocked = await super().penalize(shop, retry_after_s)
        self.penalties.append((shop, retry_after_s))
        self.penalized.set()
        return blocked


@pytest.fixture
def graphql_bucket(redis: aioredis.Redis, prefix: str) -> RecordingCostBucket:
    return RecordingCostBucket(redis, prefix)


@pytest.fixture
def limiter(
    redis: aioredis.Redis, prefix: str, graphql_bucket: RecordingCostBucket
) -> RecordingBucket:
    # A 10-slot bucket leaking 100/s: never in the way unless a test penalizes it or reports
    # another size.
    return RecordingBucket(
        redis,
        prefix,
        default_capacity=10,
        default_leak_rate=100,
        leak_rates={10: 100.0},
        graphql=graphql_bucket,
    )


class FakeShop:
    """A MockTransport handler that answers from a queue of responses and keeps the requests."""

    def __init__(self, *responses: httpx.Response | Exception | Handler) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return await answer(request)
        # A fresh copy each time: a response object is not meant to be sent twice.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    @property
    def queries(self) -> list[str]:
        return [request.url.query.decode() for request in self.requests]


def make_client(shop: FakeShop, limiter: SharedLeakyBucket, **options: Any) -> ShopifyClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(shop))
    options.setdefault("backoff_base_s", 0.01)
    options.setdefault("backoff_max_s", 0.05)
    options.setdefault("shop", SHOP)
    return ShopifyClient(BASE, TOKEN, limiter, http=http, **options)


def ok(body: Any = None, *, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json={} if body is None else body, headers=headers)


def page_url(page_info: str, limit: int = 2) -> str:
    # Shopify links to the shop's own domain; the client keeps to its base URL.
    return f"https://{SHOP}{API}/orders.json?limit={limit}&page_info={page_info}"


# --- REST ---------------------------------------------------------------------------------------


async def test_get_builds_the_versioned_url_and_sends_the_token(limiter: RecordingBucket) -> None:
    shop = FakeShop(ok({"shop": {"id": 1}}, headers={"X-Shopify-Shop-Api-Call-Limit": "1/40"}))
    async with make_client(shop, limiter) as client:
        response = await client.get("shop.json", {"fields": ["id", "name"], "flag": True})
    request = shop.requests[0]
    assert str(request.url) == f"{BASE}{API}/shop.json?fields=id%2Cname&flag=true"
    assert request.method == "GET"
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert request.headers["Accept"] == "application/json"
    assert response.json == {"shop": {"id": 1}}
    assert response.status == 200
    assert response.call_limit == (1, 40)
    assert response.next_page_info is None


async def test_paginate_follows_link_and_sends_only_limit_and_page_info(
    limiter: RecordingBucket,
) -> None:
    shop = FakeShop(
        ok({"orders": [{"id": 1}, {"id": 2}]}, headers={"Link": f'<{page_url("p2")}>; rel="next"'}),
        ok(
            {"orders": [{"id": 3}, {"id": 4}]},
            headers={"Link": f'<{page_url("p1")}>; rel="previous", <{page_url("p3")}>; rel="next"'},
        ),
        ok({"orders": [{"id": 5}]}, headers={"Link": f'<{page_url("p2b")}>; rel="previous"'}),
    )
    async with make_client(shop, limiter) as client:
        pages = [
            page
            async for page in client.paginate(
                "orders.json",
                {"status": "any", "updated_at_min": "2026-01-01T00:00:00Z", "limit": 50},
                limit=2,
            )
        ]
    assert pages == [[{"id": 1}, {"id": 2}], [{"id": 3}, {"id": 4}], [{"id": 5}]]
    assert shop.queries == [
        "status=any&updated_at_min=2026-01-01T00%3A00%3A00Z&limit=2",
        "limit=2&page_info=p2",
        "limit=2&page_info=p3",
    ]
    assert {request.url.host for request in shop.requests} == {"127.0.0.1"}
    assert {request.url.path for request in shop.requests} == {f"{API}/orders.json"}


async def test_paginate_keeps_fields_and_can_resume_from_a_cursor(
    limiter: RecordingBucket,
) -> None:
    shop = FakeShop(
        ok({"products": [{"id": 1}]}, headers={"Link": f'<{page_url("n2", 1)}>; rel="next"'}),
        ok({"products": [{"id": 2}]}),
    )
    async with make_client(shop, limiter) as client:
        pages = [
            page
            async for page in client.paginate(
                "products.json", {"vendor": "Acme"}, limit=1, fields="id,updated_at"
            )
        ]
        assert pages == [[{"id": 1}], [{"id": 2}]]
        assert shop.queries == [
            "vendor=Acme&limit=1&fields=id%2Cupdated_at",
            "limit=1&page_info=n2&fields=id%2Cupdated_at",
        ]

        # Resuming from a saved cursor sends none of the filters either.
        shop.requests.clear()
        responses = [
            response
            async for response in client.pages(
                "products.json", {"vendor": "Acme"}, limit=1, page_info="saved"
            )
        ]
        assert shop.queries == ["limit=1&page_info=saved"]
        assert responses[0].next_page_info is None

        with pytest.raises(ValueError):
            async for _ in client.paginate("products.json", limit=251):
                pass


async def test_call_limit_header_is_observed(limiter: RecordingBucket) -> None:
    shop = FakeShop(
        ok({"orders": []}, headers={"X-Shopify-Shop-Api-Call-Limit": "39/40"}),
        ok({"orders": []}, headers={"X-Shopify-Shop-Api-Call-Limit": "75/80"}),
    )
    async with make_client(shop, limiter) as client:
        started = time.monotonic()
        await client.get("orders.json")
        state = await limiter.state(SHOP)
        assert (state.capacity, state.leak_rate) == (40, 2)
        assert 39 - 2 * (time.monotonic() - started) <= state.level <= 39

        # The bucket is nearly full: the next call waits for the leak before it goes out.
        started = time.monotonic()
        await client.get("orders.json")
        assert time.monotonic() - started >= 0.9  # (39 + 1 - 38) / 2 per s, less a little
        state = await limiter.state(SHOP)
        assert (state.capacity, state.leak_rate) == (80, 4)
        # Reported at some point after ``started``, leaking 4/s since.
        assert 75 - 4 * (time.monotonic() - started) <= state.level <= 75


async def test_429_waits_for_retry_after_in_every_process_and_repeats(
    redis_url: str, prefix: str, limiter: RecordingBucket
) -> None:
    arrivals: list[tuple[str, float]] = []

    def answer(status: int, tag: str) -> Handler:
        async def handle(request: httpx.Request) -> httpx.Response:
            arrivals.append((tag, time.monotonic()))
            if status == 429:
                return httpx.Response(
                    429,
                    json={"errors": "Exceeded 2 calls per second for api client."},
                    headers={"Retry-After": "0.4", "X-Shopify-Shop-Api-Call-Limit": "10/10"},
                )
            return ok({"orders": []}, headers={"X-Shopify-Shop-Api-Call-Limit": "1/10"})

        return handle

    shop = FakeShop(answer(429, "a"), answer(200, "a"))
    other_shop = FakeShop(answer(200, "b"))
    other_redis = create_client(redis_url)
    other_limiter = SharedLeakyBucket(other_redis, prefix, leak_rates={10: 100.0})
    try:
        async with (
            make_client(shop, limiter) as client,
            make_client(other_shop, other_limiter) as other,
        ):
            started = time.monotonic()
            first = asyncio.create_task(client.get("orders.json"))
            await limiter.penalized.wait()
            # Another process calling the same shop after the 429 waits too.
            await other.get("orders.json")
            response = await first
    finally:
        await other_redis.aclose()

    assert response.status == 200
    assert limiter.penalties == [(SHOP, 0.4)]
    assert len(shop.requests) == 2  # the 429, then the repeat
    assert str(shop.requests[0].url) == str(shop.requests[1].url)
    times = dict(arrivals[1:]) | {"first": arrivals[0][1]}
    assert times["first"] - started < 0.2
    assert times["a"] - times["first"] >= 0.39
    assert times["b"] - times["first"] >= 0.39


async def test_429_without_retry_after_uses_two_seconds_and_gives_up_eventually(
    limiter: RecordingBucket,
) -> None:
    shop = FakeShop(httpx.Response(429, json={"errors": "Too many"}))
    async with make_client(shop, limiter, max_throttle_retries=1, max_retry_after_s=0.05) as client:
        with pytest.raises(ShopifyThrottled) as raised:
            await client.get("orders.json")
    assert raised.value.status == 429
    assert raised.value.retryable
    assert len(shop.requests) == 2
    assert limiter.penalties == [(SHOP, 0.05), (SHOP, 0.05)]  # 2.0 capped by the option

    async with make_client(FakeShop(httpx.Response(429)), limiter) as client:
        assert client._retry_after(None, 2.0) == 2.0
        assert client._retry_after("1.5", 2.0) == 1.5
        assert client._retry_after("soon", 2.0) == 2.0
        assert client._retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 2.0) == 0.0


async def test_5xx_is_retried_with_backoff_then_raised(limiter: RecordingBucket) -> None:
    shop = FakeShop(httpx.Response(502), httpx.Response(500), ok({"orders": [{"id": 1}]}))
    async with make_client(shop, limiter, max_retries=2) as client:
        response = await client.get("orders.json")
    assert response.json == {"orders": [{"id": 1}]}
    assert len(shop.requests) == 3

    shop = FakeShop(httpx.Response(503, json={"errors": "Unavailable"}))
    async with make_client(shop, limiter, max_retries=2) as client:
        with pytest.raises(ShopifyServerError) as raised:
            await client.get("orders.json")
    assert len(shop.requests) == 3  # the first try and 2 retries
    assert raised.value.status == 503
    assert raised.value.errors == "Unavailable"
    assert raised.value.retryable


async def test_network_errors_are_retried_then_raised(limiter: RecordingBucket) -> None:
    def failing(kind: type[httpx.TransportError]) -> Handler:
        async def handle(request: httpx.Request) -> httpx.Response:
            raise kind("boom", request=request)

        return handle

    shop = FakeShop(
        failing(httpx.ConnectTimeout),
        failing(httpx.ReadTimeout),
        failing(httpx.RemoteProtocolError),
        failing(httpx.ReadError),
        ok({"orders": []}),
    )
    async with make_client(shop, limiter, max_retries=4) as client:
        assert (await client.get("orders.json")).json == {"orders": []}
    assert len(shop.requests) == 5

    shop = FakeShop(failing(httpx.ConnectError))
    async with make_client(shop, limiter, max_retries=3) as client:
        with pytest.raises(ShopifyNetworkError) as raised:
            await client.get("orders.json")
    assert len(shop.requests) == 4
    assert "ConnectError" in str(raised.value)
    assert raised.value.retryable


async def test_requests_that_may_have_been_carried_out_are_not_repeated(
    limiter: RecordingBucket,
) -> None:
    async def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    body: dict[str, Any] = {"fulfillment": {"line_items_by_fulfillment_order": []}}
    shop = FakeShop(read_timeout)
    async with make_client(shop, limiter, max_retries=3) as client:
        with pytest.raises(ShopifyNetworkError, match="may have been carried out"):
            await client.post("fulfillments.json", body)
        assert len(shop.requests) == 1

        shop.requests.clear()
        shop.responses = [httpx.Response(500)]
        with pytest.raises(ShopifyServerError):
            await client.post("fulfillments.json", body)
        assert len(shop.requests) == 1

        # A request that never left is always safe to repeat.
        async def refused(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        shop.requests.clear()
        shop.responses = [refused, ok({"fulfillment": {"id": 9}}, headers=None)]
        assert (await client.post("fulfillments.json", body)).json == {"fulfillment": {"id": 9}}
        assert len(shop.requests) == 2
        assert json.loads(shop.requests[1].content) == body

        # The caller vouches for it (an idempotency key): repeated like a GET.
        shop.requests.clear()
        shop.responses = [read_timeout, httpx.Response(502), ok({"fulfillment": {"id": 9}})]
        response = await client.post("fulfillments.json", body, idempotent=True)
        assert response.json == {"fulfillment": {"id": 9}}
        assert len(shop.requests) == 3

        # PUT and DELETE are idempotent by default.
        shop.requests.clear()
        shop.responses = [read_timeout, ok({"product": {"id": 1}})]
        await client.put("products/1.json", {"product": {"id": 1, "title": "T"}})
        shop.responses = [httpx.Response(500), httpx.Response(200)]
        assert (await client.delete("products/1.json")).json == {}
        assert [request.method for request in shop.requests] == ["PUT", "PUT", "DELETE", "DELETE"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ShopifyAuthError),
        (402, ShopifyShopUnavailable),
        (403, ShopifyAuthError),
        (404, ShopifyNotFound),
        (406, ShopifyRequestError),
        (422, ShopifyRequestError),
        (423, ShopifyShopUnavailable),
        (301, ShopifyRequestError),
    ],
)
async def test_client_errors_raise_at_once(
    limiter: RecordingBucket, status: int, kind: type[ShopifyError]
) -> None:
    errors: Any = {"title": ["can't be blank"]} if status == 422 else "Not Found"
    shop = FakeShop(
        httpx.Response(
            status,
            json={"errors": errors},
            headers={"X-Request-Id": "req-123", "Location": f"{BASE}/elsewhere"},
        )
    )
    async with make_client(shop, limiter, max_retries=5) as client:
        with pytest.raises(kind) as raised:
            await client.post("products.json", {"product": {"title": ""}}, idempotent=True)
    assert len(shop.requests) == 1
    assert type(raised.value) is kind
    assert raised.value.status == status
    assert raised.value.errors == errors
    assert raised.value.request_id == "req-123"
    assert not raised.value.retryable
    assert f"-> {status}" in str(raised.value)


async def test_an_expiring_token_is_refreshed_once_after_401(limiter: RecordingBucket) -> None:
    asked: list[str | None] = []

    async def provider(stale: str | None) -> str:
        asked.append(stale)
        return "shpat_new" if stale == "shpat_old" or len(asked) > 2 else "shpat_old"

    async def shop_handler(request: httpx.Request) -> httpx.Response:
        if request.headers["X-Shopify-Access-Token"] != "shpat_new":
            return httpx.Response(401, json={"errors": "[API] Invalid API key or access token"})
        return ok({"shop": {}})

    shop = FakeShop(shop_handler)
    http = httpx.AsyncClient(transport=httpx.MockTransport(shop))
    client = ShopifyClient(BASE, None, limiter, http=http, token_provider=provider, shop=SHOP)
    assert (await client.get("shop.json")).json == {"shop": {}}
    assert asked == [None, "shpat_old"]
    assert len(shop.requests) == 2

    # A token refused even after the refresh is an auth error, not a loop.
    shop.responses = [httpx.Response(401, json={"errors": "revoked"})]
    with pytest.raises(ShopifyAuthError):
        await client.get("shop.json")
    assert len(shop.requests) == 4
    await http.aclose()

    with pytest.raises(ValueError):
        ShopifyClient(BASE, TOKEN, limiter, token_provider=provider)
    with pytest.raises(ValueError):
        ShopifyClient("ftp://127.0.0.1", TOKEN, limiter)


async def test_client_for_a_stored_channel(limiter: RecordingBucket) -> None:
    channel = Channel(
        type=ChannelType.SHOPIFY,
        name="Acme",
        shop_domain=SHOP,
        api_version="2026-07",
        api_base_url="http://127.0.0.1:9/",
    )
    credentials = ChannelCredentials(access_token=TOKEN, webhook_secret="whsec")
    shop = FakeShop(ok({"orders": []}, headers={"X-Shopify-Shop-Api-Call-Limit": "5/40"}))
    http = httpx.AsyncClient(transport=httpx.MockTransport(shop))
    started = time.monotonic()
    async with ShopifyClient.for_channel(channel, credentials, limiter, http=http) as client:
        await client.get("orders.json")
    await http.aclose()
    assert str(shop.requests[0].url) == "http://127.0.0.1:9/admin/api/2026-07/orders.json"
    assert shop.requests[0].headers["X-Shopify-Access-Token"] == TOKEN
    assert client.shop == SHOP  # the bucket is the shop's, not the base URL's
    assert 5 - 2 * (time.monotonic() - started) <= (await limiter.state(SHOP)).level <= 5
    assert TOKEN not in repr(client)


# --- GraphQL ------------------------------------------------------------------------------------


def cost(available: float, *, requested: float = 50, actual: float | None = 20) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": 1000.0,
                "currentlyAvailable": available,
                "restoreRate": 500.0,
            },
        }
    }


THROTTLED = [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
QUERY = "query { shop { name } }"


async def test_graphql_adopts_throttle_status(limiter: RecordingBucket) -> None:
    shop = FakeShop(ok({"data": {"shop": {"name": "Acme"}}, "extensions": cost(800)}))
    started = time.monotonic()
    async with make_client(shop, limiter) as client:
        data = await client.graphql(QUERY, {"a": 1})
    assert data == {"shop": {"name": "Acme"}}
    request = shop.requests[0]
    assert request.method == "POST"
    assert request.url.path == f"{API}/graphql.json"
    assert json.loads(request.content) == {"query": QUERY, "variables": {"a": 1}}
    state = await limiter.graphql.state(SHOP)
    assert (state.capacity, state.leak_rate) == (1000, 500)
    # 200 used as reported, restoring 500 points a second since.
    assert 200 - 500 * (time.monotonic() - started) <= state.level <= 200
    # Requests and points are separate buckets.
    assert not (await limiter.state(SHOP)).stored


async def test_graphql_throttled_waits_for_the_points_and_repeats(
    limiter: RecordingBucket, graphql_bucket: RecordingCostBucket
) -> None:
    # Refused with 100 of 1000 points left for a query asking 600; 500 points come back per s.
    shop = FakeShop(
        ok({"errors": THROTTLED, "extensions": cost(100, requested=600, actual=None)}),
        ok({"data": {"orders": {"nodes": []}}, "extensions": cost(500, requested=600, actual=5)}),
    )
    async with make_client(shop, limiter) as client:
        started = time.monotonic()
        data = await client.graphql("{ orders(first: 250) { nodes { id } } }")
        elapsed = time.monotonic() - started
    assert data == {"orders": {"nodes": []}}
    assert len(shop.requests) == 2
    # 900 used + 600 must come down to 1000 - margin 10: (900 + 600 - 990) / 500 per s.
    assert elapsed >= 0.9
    assert limiter.penalties == []

    # The same as an HTTP 429, and without any cost information (a second's pause).
    shop = FakeShop(
        httpx.Response(429, json={"errors": THROTTLED, "extensions": cost(0, actual=None)}),
        ok({"errors": THROTTLED}),
        ok({"data": {"shop": {"name": "Acme"}}, "extensions": cost(990)}),
    )
    async with make_client(shop, limiter) as client:
        assert await client.graphql(QUERY) == {"shop": {"name": "Acme"}}
    assert len(shop.requests) == 3
    assert graphql_bucket.penalties == [(SHOP, 1.0)]


async def test_graphql_errors_and_user_errors(limiter: RecordingBucket) -> None:
    user_errors = {
        "productCreate": {"product": None, "userErrors": [{"field": ["title"], "message": "x"}]}
    }
    shop = FakeShop(
        ok({"data": user_errors, "extensions": cost(990)}),
        ok({"errors": [{"message": "Field 'nope' doesn't exist on type 'Shop'"}], "data": None}),
    )
    async with make_client(shop, limiter) as client:
        assert await client.graphql("mutation { productCreate { userErrors { field } } }") == (
            user_errors
        )
        with pytest.raises(ShopifyGraphQLError) as raised:
            await client.graphql("{ shop { nope } }")
    assert raised.value.errors == [{"message": "Field 'nope' doesn't exist on type 'Shop'"}]

    # A mutation is not repeated after a lost answer; a query is.
    async def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("lost", request=request)

    shop = FakeShop(lost, ok({"data": {"shop": {}}, "extensions": cost(990)}))
    async with make_client(shop, limiter) as client:
        assert await client.graphql(QUERY) == {"shop": {}}
        shop.responses = [lost, ok({"data": {}})]
        with pytest.raises(ShopifyNetworkError):
            await client.graphql("mutation M { inventorySetQuantities { userErrors { field } } }")
    assert len(shop.requests) == 3


def test_mutation_detection() -> None:
    assert is_mutation("mutation { a }")
    assert is_mutation("  # comment\n mutation Named($x: ID!) { a }")
    assert not is_mutation("query { a }")
    assert not is_mutation("{ a }")
    assert not is_mutation("# mutation\nquery { a }")


# --- secrets ------------------------------------------------------------------------------------


async def test_token_never_in_logs_errors_or_repr(
    limiter: RecordingBucket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    shop = FakeShop(
        ok({"orders": []}, headers={"X-Shopify-Shop-Api-Call-Limit": "3/10"}),
        httpx.Response(429, headers={"Retry-After": "0.01"}),
        reset,
        httpx.Response(500),
        ok({"orders": []}),
        httpx.Response(401, json={"errors": "[API] Invalid API key or access token"}),
    )
    raised: list[Exception] = []
    async with make_client(shop, limiter) as client:
        await client.get("orders.json", {"status": "any"})
        await client.get("orders.json")
        try:
            await client.get("shop.json")
        except ShopifyAuthError as exc:
            raised.append(exc)
        assert TOKEN not in repr(client)
        assert TOKEN not in repr(vars(client))
        assert TOKEN not in str(client.__dict__)

    assert all(request.headers["X-Shopify-Access-Token"] == TOKEN for request in shop.requests)
    assert raised
    assert TOKEN not in "".join(str(exc) + repr(exc) for exc in raised)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("rappit.")]
    assert ours
    assert not [line for line in ours if "status=any" in line]  # no query strings
    assert f"shopify GET {API}/orders.json -> 200 in" in caplog.text
    assert "call limit 3/10" in caplog.text
    assert "429" in caplog.text
    assert "ReadError" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN[6:] not in caplog.text


# --- many processes, one shop -------------------------------------------------------------------


class LeakyShop:
    """An ASGI shop with a real leaky bucket (``capacity`` requests leaking ``rate`` per s by
    the wall clock), answering 429 when a request does not fit, like Shopify."""

    def __init__(self, capacity: int, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.level = 0.0
        self.at = time.monotonic()
        self.served = 0
        self.throttled = 0

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        assert scope["type"] == "http"
        await asyncio.sleep(random.uniform(0, 0.005))  # on the wire
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.at) * self.rate)
        self.at = now
        headers = [(b"content-type", b"application/json")]
        if self.level + 1 > self.capacity:
            self.throttled += 1
            status = 429
            retry_after = (self.level + 1 - self.capacity) / self.rate
            headers.append((b"retry-after", f"{retry_after:.3f}".encode()))
            body = b'{"errors": "Exceeded call limit"}'
        else:
            self.level += 1
            self.served += 1
            status = 200
            body = b'{"orders": []}'
        used = f"{min(self.capacity, math.ceil(self.level))}/{self.capacity}"
        headers.append((b"x-shopify-shop-api-call-limit", used.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def test_four_processes_share_the_limit_and_get_no_429(redis_url: str, prefix: str) -> None:
    app = LeakyShop(capacity=20, rate=20)
    redises = [create_client(redis_url) for _ in range(4)]
    https = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) for _ in range(4)]
    clients = [
        ShopifyClient(
            "http://127.0.0.1:9",
            TOKEN,
            SharedLeakyBucket(
                redis,
                prefix,
                default_capacity=20,
                default_leak_rate=20,
                leak_rates={20: 20.0},
            ),
            http=http,
            shop=SHOP,
            max_throttle_retries=0,  # a 429 would raise: the shop must never send one
        )
        for redis, http in zip(redises, https, strict=True)
    ]

    async def worker(client: ShopifyClient) -> None:
        for _ in range(5):
            await client.get("orders.json", {"status": "any"})

    started = time.monotonic()
    try:
        await asyncio.gather(*(worker(client) for client in clients for _ in range(6)))
    finally:
        for http in https:
            await http.aclose()
        for redis in redises:
            await redis.aclose()
    elapsed = time.monotonic() - started

    assert app.throttled == 0
    assert app.served == 120
    # 18 at once (the margin keeps 2 free), then 20 per second.
    assert elapsed < 10
