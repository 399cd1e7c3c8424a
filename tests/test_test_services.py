"""The fallback that lets the test command work on a machine with no PostgreSQL server: a
throwaway server from ``pgserver``. CI has a real server, so this path is exercised here."""

from __future__ import annotations

import asyncpg

from rappit.kit.db import create_engine, ping
from rappit.kit.migrations import upgrade
from rappit.models import Base
from tests.support.services import drop_database, recreate_database, throwaway_postgres_url


async def test_throwaway_postgres_takes_the_schema() -> None:
    admin_url = throwaway_postgres_url()
    assert "host=" in admin_url  # a private Unix socket, not the machine's server

    url = await recreate_database(admin_url, "rappit_throwaway_check")
    try:
        upgrade(url)
        engine = create_engine(url)
        await ping(engine)
        await engine.dispose()
        connection = await asyncpg.connect(
            admin_url.replace("/postgres?", "/rappit_throwaway_check?")
        )
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        await connection.close()
        assert tables == len(Base.metadata.tables) + 1  # and alembic_version
    finally:
        await drop_database(admin_url, "rappit_throwaway_check")
