"""The Shopify sandbox served over real HTTP on loopback, one server for the sandbox tests.

Its clock is frozen (a test moves it with ``advance``), so leaky buckets give exact numbers and
no test depends on timing; webhook retries use a fast schedule. Every test gets shops of its
own (unique domains), so tests do not see each other's data or buckets.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from rappit.sandbox.shopify import GENERATED_UNTIL, Clock, SandboxServer, SandboxState

FROZEN_AT = GENERATED_UNTIL + 86_400  # 2026-01-02T00:00:00Z, a day after the generated data
VERSION = "2026-10"
RETRY_DELAYS = (0.05, 0.1, 0.2)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(
        clock=Clock(frozen_at=FROZEN_AT), webhook_retry_delays=RETRY_DELAYS, webhook_timeout=2.0
    )
    with SandboxServer(state) as server:
        yield server


@pytest.fixture
def control(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, timeout=30, trust_env=False) as client:
        yield client


@dataclass
class ShopHandle:
    domain: str
    token: str
    secret: str
    info: dict[str, Any]
    api: httpx.Client  # the Admin API of this shop (version 2026-10), authenticated
    control: httpx.Client  # /_sandbox/shops/{domain}

    def update(self, **body: Any) -> dict[str, Any]:
        """PATCH the shop through the control API (plan, limits, token, secret)."""
        response = self.control.patch(str(self.control.base_url).rstrip("/"), json=body)
        assert response.status_code == 200, response.text
        shop: dict[str, Any] = response.json()["shop"]
        return shop

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.api.post("/graphql.json", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@dataclass
class Shops:
    sandbox: SandboxServer
    clients: list[httpx.Client] = field(default_factory=list)

    def create(
        self,
        *,
        plan: str = "plus",
        products: int = 0,
        orders: int = 0,
        seed: int = 1,
        version: str = VERSION,
        **options: Any,
    ) -> ShopHandle:
        domain = f"shop-{uuid.uuid4().hex[:10]}.myshopify.com"
        body: dict[str, Any] = {"domain": domain, "plan": plan, **options}
        if products or orders:
            body["generate"] = {"products": products, "orders": orders, "seed": seed}
        base = self.sandbox.base_url
        with httpx.Client(base_url=base, trust_env=False, timeout=60) as client:
            response = client.post("/_sandbox/shops", json=body)
        assert response.status_code == 201, response.text
        info = response.json()["shop"]
        api = httpx.Client(
            base_url=f"{info['api_base_url']}/admin/api/{version}",
            headers={"X-Shopify-Access-Token": info["access_token"]},
            trust_env=False,
            timeout=30,
        )
        control = httpx.Client(
            base_url=f"{base}/_sandbox/shops/{domain}", trust_env=False, timeout=30
        )
        self.clients += [api, control]
        return ShopHandle(domain, info["access_token"], info["webhook_secret"], info, api, control)


@pytest.fixture
def shops(sandbox: SandboxServer) -> Iterator[Shops]:
    made = Shops(sandbox)
    yield made
    for client in made.clients:
        client.close()


def advance(control: httpx.Client, seconds: float) -> None:
    response = control.post("/_sandbox/clock", json={"advance": seconds})
    assert response.status_code == 200


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook endpoint on loopback that records every delivery; it answers ``fail_with``
    to the first ``fail_first`` deliveries (every one when ``fail_first`` is None)."""

    def __init__(self, *, fail_first: int | None = 0, fail_with: int = 500) -> None:
        self.received: list[Received] = []
        self.fail_first = fail_first
        self.fail_with = fail_with
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    count = len(receiver.received)
                    failing = receiver.fail_first is None or count < receiver.fail_first
                    status = receiver.fail_with if failing else 200
                    receiver.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        wait_until(lambda: len(self.received) >= count, timeout, f"{count} deliveries")
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**options: Any) -> Receiver:
        receiver = Receiver(**options)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()
