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
