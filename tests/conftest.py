"""Test fixtures: every database test runs on real SQLite and real PostgreSQL.

Isolation: SQLite gets a fresh copy of a migrated template file per test; PostgreSQL gets one
migrated database per xdist worker, emptied after every test. Committed data is real, so tests
of concurrency see what production would.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rappit.app import create_app
from rappit.config import Environment, Settings
from rappit.kit.crypto import SecretBox
from rappit.kit.db import create_engine, create_sessionmaker, unit_of_work
from rappit.kit.migrations import upgrade
from rappit.models import Base
from rappit.organizations.service import create_organization
from rappit.queues.client import QueueClient
from rappit.queues.enqueue import SESSION_QUEUE_KEY
from rappit.runtime import Runtime
from tests.support.factories import TEST_SECRET_KEY
from tests.support.services import (
    drop_database,
    postgres_admin_url,
    recreate_database,
    redis_test_url,
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is not a passing test: any skip fails the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter.write_line(
            f"FAILED: {len(reporter.stats['skipped'])} test(s) were skipped; every test must run",
            red=True,
        )


@pytest.fixture(scope="session")
def worker_id_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
async def postgres_url(worker_id_suffix: str) -> AsyncIterator[str]:
    # One database per run and worker: two runs on one server never drop each other's data.
    admin_url = await postgres_admin_url()
    name = f"rappit_test_{worker_id_suffix}_{os.getpid()}"
    url = await recreate_database(admin_url, name)
    upgrade(url)
    yield url
    await drop_database(admin_url, name)


@dataclass
class TestDatabase:
    __test__ = False  # not a test class

    backend: str
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


async def _truncate_all(engine: AsyncEngine) -> None:
    names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


async def _open_database(
    backend: str, tmp_path: Path, sqlite_template: Path | None, postgres_url: str
) -> AsyncIterator[TestDatabase]:
    if backend == "sqlite":
        assert sqlite_template is not None
        path = tmp_path / "rappit.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = postgres_url
    engine = create_engine(url, pool_size=20)
    try:
        yield TestDatabase(backend, url, engine, create_sessionmaker(engine))
    finally:
        if backend == "postgresql":
            await _truncate_all(engine)
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, postgres_url: str
) -> AsyncIterator[TestDatabase]:
    async for db in _open_database(request.param, tmp_path, sqlite_template, postgres_url):
        yield db


@pytest.fixture
async def postgres_database(tmp_path: Path, postgres_url: str) -> AsyncIterator[TestDatabase]:
    """For tests whose point is PostgreSQL's concurrency (row locks under real parallelism)."""
    async for db in _open_database("postgresql", tmp_path, None, postgres_url):
        yield db


@pytest.fixture
def settings(tmp_path: Path, database: TestDatabase) -> Settings:
    return Settings(
        env=Environment.TEST,
        data_dir=tmp_path / "data",
        database_url=database.url,
        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
    )


@pytest.fixture
def runtime(settings: Settings, database: TestDatabase) -> Runtime:
    return Runtime(
        settings=settings,
        engine=database.engine,
        sessionmaker=database.sessionmaker,
        secret_box=SecretBox(TEST_SECRET_KEY),
    )


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as http:
        yield http


@dataclass
class Tenant:
    organization_id: uuid.UUID
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_tenant(database: TestDatabase, name: str) -> Tenant:
    async with unit_of_work(database.sessionmaker) as session:
        organization, api_key = await create_organization(session, name)
    return Tenant(organization.id, api_key)


@pytest.fixture
async def tenant(database: TestDatabase) -> Tenant:
    return await make_tenant(database, "Acme")


@pytest.fixture
async def other_tenant(database: TestDatabase) -> Tenant:
    return await make_tenant(database, "Globex")


@pytest.fixture
async def api(client: httpx.AsyncClient, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client authenticated as ``tenant``."""
    client.headers.update(tenant.headers)
    return client


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    return "asyncio"


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def redis_url() -> str:
    return await redis_test_url()


@pytest.fixture
async def queue_client(redis_url: str) -> AsyncIterator[QueueClient]:
    """A queue client on real Redis under a key prefix of its own, so tests never see each
    other's jobs; its keys are deleted afterwards."""
    prefix = f"test{uuid.uuid4().hex[:12]}"
    client = QueueClient(redis_url, prefix=prefix, attempts=3, backoff_ms=50)
    try:
        yield client
    finally:
        keys = [key async for key in client.redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.redis.delete(*keys)
        await client.close()


@pytest.fixture
def queue_settings(settings: Settings, redis_url: str, queue_client: QueueClient) -> Settings:
    """Settings for tests that run workers: short locks and stall checks, quick reconnects."""
    return settings.model_copy(
        update={
            "redis_url": redis_url,
            "queue_prefix": queue_client.prefix,
            "job_attempts": 3,
            "job_backoff_ms": 50,
            "job_lock_duration_ms": 2000,
            "job_stalled_interval_ms": 1000,
            "worker_reconnect_delay_ms": 200,
            "worker_shutdown_timeout_s": 10.0,
        }
    )


@pytest.fixture
def queue_runtime(
    queue_settings: Settings, database: TestDatabase, queue_client: QueueClient
) -> Runtime:
    """A runtime whose sessions enqueue after commit to ``queue_client``."""
    return Runtime(
        settings=queue_settings,
        engine=database.engine,
        sessionmaker=create_sessionmaker(database.engine, info={SESSION_QUEUE_KEY: queue_client}),
        secret_box=SecretBox(TEST_SECRET_KEY),
        queue=queue_client,
    )
