"""Engine, sessions and the unit of work.

Only the edges (the request dependency and the job context) open a unit of work, and only the
unit of work commits. Services and repositories ``flush()``.

SQLite runs every transaction as ``BEGIN IMMEDIATE``: it takes the write lock up front, so two
concurrent transactions queue on ``busy_timeout`` instead of failing with ``SQLITE_BUSY`` when a
reader later tries to write. PostgreSQL uses READ COMMITTED with explicit row locks.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A pooled PostgreSQL connection unused for this long is checked before it is handed out.
PING_AFTER_IDLE_S = 5.0

AfterCommitHook = Callable[[], Awaitable[None]]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
) -> AsyncEngine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
    _ping_after_idle(engine, ping_after_idle_s)
    return engine


def _ping_after_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Check a pooled connection with a round trip before use only when it sat unused for
    ``idle_s`` or longer; a broken one is replaced before anyone sees it.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one extra round trip per unit of
    work, which for a worker is two of the ~25 an order costs, and for the webhook inbox one
    of the two a flush costs. A connection used moments ago is as good as a ping; if the server
    went away since, the statement fails as a disconnect, SQLAlchemy discards every
    connection opened before that moment, and the request or job fails once (a job is then
    retried like any other failure)."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")  # none yet: a connection made just now
        if idle_since is None or time.monotonic() - idle_since < idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool closes this one and hands out a fresh connection instead.
            raise DisconnectionError(f"pooled connection lost while idle: {exc}") from exc


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see _on_begin) instead of the driver's lazy BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """``info`` is copied into every session (the queue client for enqueue-after-commit)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info or {})


def after_commit(session: AsyncSession, hook: AfterCommitHook) -> None:
    """Run ``hook`` once the unit of work that owns ``session`` has committed.

    A rollback drops it. This is how jobs are enqueued only for data that exists.
    """
    session.info.setdefault("after_commit", []).append(hook)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The transaction boundary: commit on success, roll back on error, then run after-commit
    hooks (only after a successful commit)."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            session.info.pop("after_commit", None)
            raise
        hooks: list[AfterCommitHook] = session.info.pop("after_commit", [])
    for hook in hooks:
        await hook()


async def ping(engine: AsyncEngine) -> None:
    from sqlalchemy import text

    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def dialect_of(session: AsyncSession | AsyncConnection) -> str:
    """``"sqlite"`` or ``"postgresql"``: repositories pick dialect-specific SQL with it."""
    return (
        session.get_bind().dialect.name
        if isinstance(session, AsyncSession)
        else (session.dialect.name)
    )
