"""Pooled PostgreSQL connections: checked before use only after sitting idle, and a connection
the server dropped is replaced before anyone sees it (idle) or after one failure (in use)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from rappit.kit.db import create_engine


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(postgres_url: str, pid: int) -> None:
    """The server ends that session, as a restart or an idle timeout would."""
    other = create_engine(postgres_url, pool_size=1)
    try:
        async with other.connect() as connection:
            # With a timeout it answers once the session's process has exited (PostgreSQL 14+),
            # not merely signalled: its socket is closed by then.
            ended = await connection.execute(
                text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}
            )
            assert ended.scalar_one() is True
    finally:
        await other.dispose()


async def test_an_idle_connection_the_server_dropped_is_replaced_unseen(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, ping_after_idle_s=0.0)
    try:
        first = await _backend_pid(engine)
        await _terminate(postgres_url, first)

        second = await _backend_pid(engine)  # no error: the ping found it broken

        assert second != first
        assert engine.sync_engine.pool.checkedout() == 0
    finally:
        await engine.dispose()


async def test_a_connection_used_moments_ago_is_not_pinged(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, ping_after_idle_s=60.0)
    calls: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _statement(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        calls.append(statement)

    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first
        # Only the two statements themselves: no ping round trip in between.
        assert calls == ["SELECT pg_backend_pid()", "SELECT pg_backend_pid()"]

        # The price of not pinging: dropped meanwhile, the next statement fails once (as a
        # disconnect, so the pool discards the connection) and the one after that works.
        await _terminate(postgres_url, first)
        with pytest.raises(DBAPIError) as failure:
            await _backend_pid(engine)
        assert failure.value.connection_invalidated is True
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
