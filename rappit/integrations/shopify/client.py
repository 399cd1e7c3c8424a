"""Shopify Admin API client (REST and GraphQL) that keeps to the shop's rate limit.

Rate limits (reference/channel-apis.md §2): every REST call first takes a slot from the shop's
``SharedLeakyBucket`` in Redis, shared by every process calling that shop, and every response's
``X-Shopify-Shop-Api-Call-Limit: used/size`` is fed back into it, so the bucket follows the
shop's real plan and load. A 429 penalizes the shared bucket for ``Retry-After`` (every process
waits, not just this one) and the call is repeated. GraphQL calls take their estimated cost
from the points bucket (``limiter.graphql``) and adopt ``extensions.cost.throttleStatus`` from
every answer; a THROTTLED answer (HTTP 200 or 429) waits for the points it asked for and is
repeated.

Retries: connect errors and timeouts, connection resets and 5xx are repeated with exponential
backoff and jitter up to ``max_retries`` times, for requests that are safe to repeat: GET, PUT,
DELETE and GraphQL queries by default. A POST or a GraphQL mutation may already have been
carried out when the answer was lost, so it is repeated only after errors that prove it never
reached Shopify (connect errors, no free connection, 429), unless the caller passes
``idempotent=True`` (an idempotency key in the mutation, a create guarded by a lookup…). 4xx
answers raise at once (``errors.py``).

Pagination (§3): ``paginate`` follows ``Link: <…page_info=…>; rel="next"``, and from the second
page sends only ``limit``, ``page_info`` and ``fields``: the filters of the first request are
encoded in the cursor and Shopify refuses them next to it.

Tokens: the access token goes only into the ``X-Shopify-Access-Token`` header of each request.
It is never logged (log lines carry method, path without query, status, duration and call
limit) and not shown by ``repr``. Expiring offline tokens (§2.5): pass ``token_provider``, an
async callable ``provider(stale) -> token``. The client calls ``provider(None)`` before each
request for the current token; after a 401 it calls ``provider(stale_token)`` once and repeats
the request with the answer. The provider refreshes when ``stale`` is still its current token
(refresh tokens rotate: it must store the new pair, and serialise refreshes, e.g. with a Redis
lock, because concurrent callers may report the same stale token) and otherwise returns the
newer token it already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx

from rappit.channels.service import channel_base_url
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
from rappit.kit.ratelimit import RateLimitTimeout, SharedLeakyBucket

if TYPE_CHECKING:
    from rappit.channels.service import ChannelCredentials
    from rappit.models import Channel

logger = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2026-10"
MAX_PAGE_SIZE = 250
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
TOKEN_HEADER = "X-Shopify-Access-Token"
# Shopify's documented example; used when a 429 carries no (readable) Retry-After.
DEFAULT_RETRY_AFTER_S = 2.0
USER_AGENT = "Rappit/0.1"

TokenProvider = Callable[[str | None], Awaitable[str]]
Bucket = Literal["rest", "graphql"]

# Errors after which the request certainly never reached Shopify: safe to repeat any request.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Errors after which it may have been carried out: repeated only when idempotent.
_MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_OPERATION = re.compile(r"\A(?:\s|#[^\n]*(?:\n|\Z))*(query|mutation|subscription)\b")
_MAX_REMEMBERED_COSTS = 256


@dataclass(frozen=True)
class ShopifyResponse:
    status: int
    json: Any
    headers: httpx.Headers
    next_page_info: str | None = None
    previous_page_info: str | None = None

    @property
    def call_limit(self) -> tuple[int, int] | None:
        """``X-Shopify-Shop-Api-Call-Limit`` as (used, size), if present and readable."""
        return parse_call_limit(self.headers.get(CALL_LIMIT_HEADER))


def parse_call_limit(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    used, _, size = value.partition("/")
    try:
        parsed = int(used.strip()), int(size.strip())
    except ValueError:
        return None
    return parsed if parsed[0] >= 0 and parsed[1] > 0 else None


def page_info_of(response: httpx.Response, rel: str) -> str | None:
    """The ``page_info`` of the ``Link`` header's ``rel`` URL, if there is one."""
    link = response.links.get(rel)
    if not link or "url" not in link:
        return None
    values = parse_qs(urlsplit(link["url"]).query).get("page_info")
    return values[0] if values else None


def is_mutation(query: str) -> bool:
    match = _OPERATION.match(query)
    return match is not None and match.group(1) == "mutation"


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(_param(item) for item in value)
    return str(value)


def _encode_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Shopify's spelling: lists as comma-separated ids, booleans lower case, dates ISO 8601;
    None leaves the parameter out."""
    return {key: _param(value) for key, value in (params or {}).items() if value is not None}


class _StaticToken:
    """A token that cannot be refreshed; its repr hides it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "_StaticToken('***')"

    async def __call__(self, stale: str | None) -> str:
        return self._token


class ShopifyClient:
    """One shop's Admin API. ``shop`` names the shop's rate-limit bucket (default: the base
    URL's host); every client of one shop, in any process, must use the same name and the same
    Redis prefix so they share one bucket."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        limiter: SharedLeakyBucket,
        *,
        api_version: str = DEFAULT_API_VERSION,
        http: httpx.AsyncClient | None = None,
        token_provider: TokenProvider | None = None,
        shop: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        max_retries: int = 4,
        max_throttle_retries: int = 10,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        max_limiter_wait_s: float | None = 300.0,
        graphql_default_cost: float = 50.0,
    ) -> None:
        parsed = urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("base_url must be an http(s) URL with a host")
        if (access_token is None) == (token_provider is None):
            raise ValueError("give exactly one of access_token and token_provider")
        if max_retries < 0 or max_throttle_retries < 0:
            raise ValueError("retry counts must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.shop = (shop or parsed.netloc).lower()
        self.limiter = limiter
        self.max_retries = max_retries
        self.max_throttle_retries = max_throttle_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.max_limiter_wait_s = max_limiter_wait_s
        self.graphql_default_cost = graphql_default_cost
        self.timeout = httpx.Timeout(
            connect=connect_timeout_s,
            read=read_timeout_s,
            write=read_timeout_s,
            pool=read_timeout_s,
        )
        self._refreshable = token_provider is not None
        self._token: TokenProvider = (
            token_provider if token_provider is not None else _StaticToken(str(access_token))
        )
        self._owns_http = http is None
        # No redirects: a redirect to another host must not receive the token.
        self._http = http or httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self._graphql_costs: dict[str, float] = {}

    @classmethod
    def for_channel(
        cls,
        channel: Channel,
        credentials: ChannelCredentials,
        limiter: SharedLeakyBucket,
        **options: Any,
    ) -> ShopifyClient:
        """The client of a stored channel: its base URL, API version and token, with the
        bucket named after the shop's permanent domain."""
        options.setdefault("api_version", channel.api_version or DEFAULT_API_VERSION)
        options.setdefault("shop", channel.shop_domain)
        return cls(channel_base_url(channel), credentials.access_token, limiter, **options)

    def __repr__(self) -> str:
        return (
            f"ShopifyClient(base_url={self.base_url!r}, shop={self.shop!r}, "
            f"api_version={self.api_version!r})"
        )

    async def __aenter__(self) -> ShopifyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the HTTP client if this client made it (a passed-in one is the caller's)."""
        if self._owns_http:
            await self._http.aclose()

    # --- REST ---------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base_url}/admin/api/{self.api_version}/{path.lstrip('/')}"

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> ShopifyResponse:
        return await self._rest("GET", path, params=params, idempotent=True)

    async def post(
        self,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = False,
    ) -> ShopifyResponse:
        return await self._rest("POST", path, params=params, json=json, idempotent=idempotent)

    async def put(
        self,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> ShopifyResponse:
        return await self._rest("PUT", path, params=params, json=json, idempotent=idempotent)

    async def delete(
        self, path: str, *, params: Mapping[str, Any] | None = None, idempotent: bool = True
    ) -> ShopifyResponse:
        return await self._rest("DELETE", path, params=params, idempotent=idempotent)

    async def pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int = MAX_PAGE_SIZE,
        fields: str | None = None,
        page_info: str | None = None,
    ) -> AsyncIterator[ShopifyResponse]:
        """Every page of a REST list as a response (its ``next_page_info`` is the cursor to
        resume from). Given ``page_info``, starts there, and ``params`` are not sent: the
        cursor already carries the filters."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be 1..{MAX_PAGE_SIZE}")
        given = dict(params or {})
        fields = fields if fields is not None else given.get("fields")
        if page_info is None:
            first = {k: v for k, v in given.items() if k not in ("limit", "page_info")}
            first["limit"] = limit
            if fields is not None:
                first["fields"] = fields
            response = await self.get(path, first)
        else:
            response = await self.get(path, self._cursor_params(page_info, limit, fields))
        while True:
            yield response
            if response.next_page_info is None:
                return
            response = await self.get(
                path, self._cursor_params(response.next_page_info, limit, fields)
            )

    async def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int = MAX_PAGE_SIZE,
        fields: str | None = None,
        key: str | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The items of every page of a REST list (``orders.json`` -> the ``orders`` list;
        ``key`` names another)."""
        name = key or path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
        async for response in self.pages(path, params, limit=limit, fields=fields):
            yield _items(response, name)

    @staticmethod
    def _cursor_params(page_info: str, limit: int, fields: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "page_info": page_info}
        if fields is not None:
            params["fields"] = fields
        return params

    async def _rest(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        idempotent: bool,
        json: Any = None,
    ) -> ShopifyResponse:
        response = await self._send(
            method, path, params=params, json=json, idempotent=idempotent, bucket="rest", cost=1
        )
        return ShopifyResponse(
            status=response.status_code,
            json=_json(response) if response.content else {},
            headers=response.headers,
            next_page_info=page_info_of(response, "next"),
            previous_page_info=page_info_of(response, "previous"),
        )

    # --- GraphQL ------------------------------------------------------------------------------

    async def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        cost: float | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """The ``data`` of a GraphQL Admin call. ``cost`` is the points to reserve before
        sending (default: what Shopify charged this query the last time, else
        ``graphql_default_cost``). Top-level errors other than THROTTLED raise
        ``ShopifyGraphQLError``; ``userErrors`` are left in ``data``. Mutations are repeated
        after an ambiguous failure only with ``idempotent=True``."""
        if idempotent is None:
            idempotent = not is_mutation(query)
        estimate = float(cost or self._graphql_costs.get(query) or self.graphql_default_cost)
        body = {"query": query, "variables": dict(variables or {})}
        throttled = 0
        while True:
            response = await self._send(
                "POST",
                "graphql.json",
                params=None,
                json=body,
                idempotent=idempotent,
                bucket="graphql",
                cost=estimate,
            )
            document = _json(response)
            if not isinstance(document, dict):
                raise ShopifyGraphQLError(
                    "GraphQL answer is not an object", status=response.status_code
                )
            errors = document.get("errors")
            is_throttled = _is_throttled(errors)
            requested = await self._observe_graphql_cost(
                document, estimate, refused=is_throttled, query=query
            )
            if is_throttled:
                throttled += 1
                if throttled > self.max_throttle_retries:
                    raise ShopifyThrottled(
                        "GraphQL still throttled after retries",
                        status=response.status_code,
                        errors=errors,
                        request_id=response.headers.get("X-Request-Id"),
                    )
                if requested is None:
                    # No cost information: give the bucket a second before asking again.
                    await self.limiter.graphql.penalize(self.shop, 1.0)
                else:
                    estimate = requested
                logger.warning(
                    "shopify graphql throttled for %s (attempt %d), waiting for %.0f points",
                    self.shop,
                    throttled,
                    estimate,
                )
                continue
            if errors:
                raise ShopifyGraphQLError(
                    "GraphQL errors",
                    status=response.status_code,
                    errors=errors,
                    request_id=response.headers.get("X-Request-Id"),
                    data=document.get("data"),
                )
            data = document.get("data")
            if not isinstance(data, dict):
                raise ShopifyGraphQLError("GraphQL answer has no data", status=200)
            return data

    async def _observe_graphql_cost(
        self, document: dict[str, Any], estimate: float, *, refused: bool, query: str | None
    ) -> float | None:
        """Feed ``extensions.cost`` to the points bucket; answers the requested cost."""
        extensions = document.get("extensions")
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        if not isinstance(cost, dict):
            return None
        requested = _float(cost.get("requestedQueryCost"))
        actual = _float(cost.get("actualQueryCost"))
        status = cost.get("throttleStatus")
        if requested is not None and query is not None:
            if len(self._graphql_costs) >= _MAX_REMEMBERED_COSTS:
                self._graphql_costs.clear()
            self._graphql_costs[query] = requested
        if isinstance(status, dict):
            available = _float(status.get("currentlyAvailable"))
            maximum = _float(status.get("maximumAvailable"))
            restore = _float(status.get("restoreRate"))
            if available is not None and maximum and restore:
                # What Shopify charged: nothing when it refused the query, else the actual cost
                # (the requested one until the refund, when the actual is not given).
                charged = 0.0 if refused else (actual if actual is not None else requested or 0)
                await self.limiter.graphql.observe_throttle(
                    self.shop, available, maximum, restore, refund=estimate - charged
                )
        return requested

    # --- sending --------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        idempotent: bool,
        bucket: Bucket,
        cost: float,
    ) -> httpx.Response:
        url = self.url(path)
        log_path = urlsplit(url).path
        query = _encode_params(params)
        failures = 0
        throttles = 0
        refreshed = False
        stale: str | None = None
        while True:
            await self._acquire(bucket, cost)
            token = await self._token(stale)
            stale = None
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=query or None,
                    json=json,
                    headers={
                        TOKEN_HEADER: token,
                        "Accept": "application/json",
                        "User-Agent": USER_AGENT,
                    },
                    timeout=self.timeout,
                )
            except httpx.TransportError as exc:
                failures += 1
                safe = isinstance(exc, _NOT_SENT) or (idempotent and isinstance(exc, _MAYBE_SENT))
                reason = type(exc).__name__
                if not safe or failures > self.max_retries:
                    logger.warning(
                        "shopify %s %s failed: %s (attempt %d, giving up)",
                        method,
                        log_path,
                        reason,
                        failures,
                    )
                    raise ShopifyNetworkError(
                        f"{method} {log_path} failed: {reason}"
                        + (
                            " (not repeated: it may have been carried out)"
                            if not safe and isinstance(exc, _MAYBE_SENT)
                            else ""
                        )
                    ) from None
                delay = self._backoff(failures)
                logger.warning(
                    "shopify %s %s failed: %s; retry %d/%d in %.2fs",
                    method,
                    log_path,
                    reason,
                    failures,
                    self.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
                continue

            elapsed_ms = (time.monotonic() - started) * 1000
            call_limit = parse_call_limit(response.headers.get(CALL_LIMIT_HEADER))
            logger.debug(
                "shopify %s %s -> %d in %.0f ms, call limit %s",
                method,
                log_path,
                response.status_code,
                elapsed_ms,
                "/".join(map(str, call_limit)) if call_limit else "-",
            )
            if call_limit is not None:
                await self.limiter.observe(self.shop, *call_limit)
            status = response.status_code

            if 200 <= status < 300:
                return response
            if status == 429:
                throttles += 1
                await self._throttled(response, bucket, cost)
                if throttles > self.max_throttle_retries:
                    raise _error(ShopifyThrottled, f"{method} {log_path} still throttled", response)
                logger.warning(
                    "shopify %s %s throttled (429) for %s; retry %d/%d",
                    method,
                    log_path,
                    self.shop,
                    throttles,
                    self.max_throttle_retries,
                )
                continue
            if status == 401 and self._refreshable and not refreshed:
                refreshed = True
                stale = token
                logger.info("shopify %s %s -> 401; refreshing the access token", method, log_path)
                continue
            if status >= 500:
                failures += 1
                if not idempotent or failures > self.max_retries:
                    raise _error(ShopifyServerError, f"{method} {log_path} -> {status}", response)
                delay = max(
                    self._backoff(failures),
                    self._retry_after(response.headers.get("Retry-After"), 0.0),
                )
                logger.warning(
                    "shopify %s %s -> %d; retry %d/%d in %.2fs",
                    method,
                    log_path,
                    status,
                    failures,
                    self.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            raise _error(_error_class(status), f"{method} {log_path} -> {status}", response)

    async def _acquire(self, bucket: Bucket, cost: float) -> None:
        target = self.limiter if bucket == "rest" else self.limiter.graphql
        try:
            await target.acquire(self.shop, cost, max_wait_s=self.max_limiter_wait_s)
        except RateLimitTimeout as exc:
            raise ShopifyThrottled(str(exc)) from None

    async def _throttled(self, response: httpx.Response, bucket: Bucket, cost: float) -> None:
        """A 429: every process calling this shop waits (the shared bucket is penalized);
        the next acquire waits it out."""
        header = response.headers.get("Retry-After")
        if bucket == "rest":
            await self.limiter.penalize(self.shop, self._retry_after(header, DEFAULT_RETRY_AFTER_S))
            return
        # GraphQL: the body's throttleStatus says how long the points take to come back.
        document: Any = None
        with contextlib.suppress(ValueError):
            document = response.json()
        observed = None
        if isinstance(document, dict):
            observed = await self._observe_graphql_cost(document, cost, refused=True, query=None)
        if header is not None or observed is None:
            await self.limiter.graphql.penalize(self.shop, self._retry_after(header, 1.0))

    def _backoff(self, failures: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _retry_after(self, value: str | None, default: float) -> float:
        seconds = _seconds(value)
        if seconds is None:
            seconds = default
        return min(max(seconds, 0.0), self.max_retry_after_s)


def _seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number (Shopify sends ``2.0``) or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return seconds if math.isfinite(seconds) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _is_throttled(errors: Any) -> bool:
    if not isinstance(errors, list):
        return False
    for error in errors:
        if not isinstance(error, dict):
            continue
        extensions = error.get("extensions")
        if isinstance(extensions, dict) and extensions.get("code") == "THROTTLED":
            return True
    return False


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ShopifyError(
            f"answer to {response.request.method} {response.request.url.path} is not JSON",
            status=response.status_code,
            request_id=response.headers.get("X-Request-Id"),
        ) from None


def _items(response: ShopifyResponse, key: str) -> list[dict[str, Any]]:
    body = response.json
    if isinstance(body, dict):
        items = body.get(key)
        if items is None:
            lists = [value for value in body.values() if isinstance(value, list)]
            items = lists[0] if len(lists) == 1 else None
        if isinstance(items, list):
            return items
    raise ShopifyError(f"page has no '{key}' list", status=response.status)


def _error_class(status: int) -> type[ShopifyError]:
    if status in (401, 403):
        return ShopifyAuthError
    if status == 404:
        return ShopifyNotFound
    if status in (402, 423):
        return ShopifyShopUnavailable
    return ShopifyRequestError


def _error(kind: type[ShopifyError], message: str, response: httpx.Response) -> ShopifyError:
    """The error of an answer, with Shopify's ``errors`` (or ``error``) from the body."""
    errors: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors", body.get("error"))
    elif response.content:
        errors = response.text[:500]
    return kind(
        message,
        status=response.status_code,
        errors=errors,
        request_id=response.headers.get("X-Request-Id"),
    )
