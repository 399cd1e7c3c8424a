"""Serving the sandbox over real HTTP: in the foreground (``rappit sandbox``), in a background
thread of the current process (tests: ``with SandboxServer() as sandbox: sandbox.base_url``) or
in a subprocess (``SandboxProcess``, reached only through HTTP).

Only loopback is used unless told otherwise; port 0 picks a free port, bound before the server
starts so its URL is known at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import httpx
import uvicorn

from rappit.sandbox.shopify.app import create_sandbox_app
from rappit.sandbox.shopify.state import SandboxState

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


def bind(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # so, and with Nagle on, every keep-alive response waits out the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(state: SandboxState, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(
        create_sandbox_app(state),
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def serve(
    state: SandboxState,
    host: str = LOOPBACK,
    port: int = 8787,
    *,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C)."""
    sock = sock or bind(host, port)
    asyncio.run(_server(state, log_level).serve(sockets=[sock]))


class SandboxServer:
    """The sandbox in a background thread of this process::

        with SandboxServer(SandboxState(clock=Clock(frozen_at=...))) as sandbox:
            shop = sandbox.call(lambda: sandbox.state.create_shop("acme.myshopify.com"))
            httpx.get(f"{sandbox.shop_url('acme.myshopify.com')}/admin/api/2026-10/orders.json",
                      headers={"X-Shopify-Access-Token": shop.access_token})

    ``state`` is owned by the server's event loop once started: change it with ``call`` (or
    through the control API), read it freely.
    """

    def __init__(
        self,
        state: SandboxState | None = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.state = state or SandboxState()
        self.host = host
        self.port = port
        self.log_level = log_level
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None

    def start(self, timeout: float = 10.0) -> str:
        sock = bind(self.host, self.port)
        self.base_url = base_url_of(sock)
        server = self._server = _server(self.state, self.log_level)
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            ready.set()
            await server.serve(sockets=[sock])

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced by start()
                self._failure = exc
                ready.set()
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name="rappit-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        ready.wait(timeout)
        while not server.started:
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError("the sandbox server did not start") from self._failure
            if time.monotonic() > deadline:
                raise TimeoutError("the sandbox server did not start in time")
            time.sleep(0.01)
        return self.base_url

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None
        self._loop = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, function: Callable[[], T], timeout: float = 60.0) -> T:
        """Run ``function`` on the server's event loop (where the state lives) and return its
        result; use it to change the state from the test's thread."""
        if self._loop is None:
            return function()
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def shop_url(self, domain: str) -> str:
        """A channel's ``api_base_url`` for that shop."""
        return f"{self.base_url}/shops/{domain}"


class SandboxProcess:
    """The sandbox in a subprocess (``python -m rappit.sandbox.shopify``), reached only over
    HTTP; ``args`` are that command's options (``--shop``, ``--orders``, ...)."""

    def __init__(self, *args: str, host: str = LOOPBACK, port: int = 0) -> None:
        self.args = list(args)
        self.host = host
        self.port = port
        self.base_url = ""
        self.shops: list[dict[str, Any]] = []
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> str:
        command: Sequence[str] = [
            sys.executable,
            "-m",
            "rappit.sandbox.shopify",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--json",
            *self.args,
        ]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the sandbox process exited before it was ready")
        announced = json.loads(line)
        self.base_url = announced["base_url"]
        self.shops = announced["shops"]
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(
                    f"{self.base_url}/_sandbox/health", timeout=1.0, trust_env=False
                ).raise_for_status()
                return self.base_url
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError("the sandbox process did not answer") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
