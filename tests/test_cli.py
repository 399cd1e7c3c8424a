"""The ``rappit`` command, run in-process with Typer's runner (and ``serve`` as a real process).

These tests are synchronous on purpose: the CLI runs its own event loop, as it does in a shell.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from rappit.auth.service import AuthContext, authenticate
from rappit.cli import app
from rappit.kit.db import create_engine, create_sessionmaker, unit_of_work
from rappit.kit.migrations import alembic_config
from rappit.models import Base, Organization
from tests.support.services import drop_database, postgres_admin_url, recreate_database

MODEL_TABLES = set(Base.metadata.tables)

# The newest migration: what "db upgrade" reports once it is done.
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def runner(data_dir: Path) -> CliRunner:
    # None removes a variable: the developer's own RAPPIT_* settings must not leak in.
    return CliRunner(
        env={
            "RAPPIT_DATA_DIR": str(data_dir),
            "RAPPIT_DATABASE_URL": None,
            "RAPPIT_ENV": None,
            "RAPPIT_SECRET_KEY": None,
            "RAPPIT_HOST": None,
            "RAPPIT_PORT": None,
        }
    )


def _sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'rappit.db').resolve()}"


def _sqlite_tables(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "rappit.db") as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


async def _authenticate(url: str, api_key: str) -> tuple[AuthContext, str, int]:
    """What the API would do with the key: the auth context, the organisation's name, and how
    many organisations exist."""
    engine = create_engine(url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            auth = await authenticate(session, api_key)
            organization = await session.get(Organization, auth.organization_id)
            assert organization is not None
            count = await session.scalar(select(func.count()).select_from(Organization))
            return auth, organization.name, int(count or 0)
    finally:
        await engine.dispose()


def _organization_count(url: str) -> int:
    async def count() -> int:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                value = await connection.scalar(select(func.count()).select_from(Organization))
                return int(value or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _assert_one_line_error(result: Result, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert "Traceback" not in result.output


# --- db ----------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_tables(runner: CliRunner, data_dir: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade"])

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"SQLite file {(data_dir / 'rappit.db').resolve()}: schema created at revision {HEAD}\n"
    )
    assert _sqlite_tables(data_dir) == MODEL_TABLES | {"alembic_version"}

    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0
    assert again.stdout.endswith(f": already at revision {HEAD}\n")


def test_db_upgrade_to_an_unknown_revision_fails(runner: CliRunner) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--revision", "nope"])
    _assert_one_line_error(result, "Can't locate revision identified by 'nope'")


def test_db_check_passes_after_upgrade_and_fails_on_drift(
    runner: CliRunner, data_dir: Path
) -> None:
    not_migrated = runner.invoke(app, ["db", "check"])
    _assert_one_line_error(not_migrated, "run `rappit db upgrade` first")

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    passing = runner.invoke(app, ["db", "check"])
    assert passing.exit_code == 0, passing.output
    assert "Models and migrations match." in passing.stdout

    with sqlite3.connect(data_dir / "rappit.db") as connection:
        connection.execute("ALTER TABLE warehouses DROP COLUMN priority")
    drifted = runner.invoke(app, ["db", "check"])
    assert drifted.exit_code == 1
    assert drifted.stderr == (
        "error: models and migrations differ (1 change(s) need a new migration): "
        "add_column warehouses.priority\n"
    )


# --- org create --------------------------------------------------------------------------------


def test_org_create_json_prints_one_object_with_a_working_key(
    runner: CliRunner, data_dir: Path
) -> None:
    # A fresh data dir: the embedded default creates its schema on the way.
    result = runner.invoke(app, ["org", "create", "Acme", "--json"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    body = json.loads(lines[0])
    assert set(body) == {"organization_id", "api_key"}
    assert body["api_key"].startswith("rpt_")

    auth, name, count = asyncio.run(_authenticate(_sqlite_url(data_dir), body["api_key"]))
    assert auth.organization_id == uuid.UUID(body["organization_id"])
    assert auth.is_admin
    assert (name, count) == ("Acme", 1)


def test_org_create_shows_the_key_in_a_panel(runner: CliRunner, data_dir: Path) -> None:
    result = runner.invoke(app, ["org", "create", "  My Shop  "])

    assert result.exit_code == 0, result.output
    assert "Organisation created" in result.stdout
    assert "My Shop" in result.stdout
    assert "shown this once" in result.stdout
    [api_key] = [word for word in result.stdout.split() if word.startswith("rpt_")]
    _, name, _ = asyncio.run(_authenticate(_sqlite_url(data_dir), api_key))
    assert name == "My Shop"


@pytest.mark.parametrize("name", ["", "   "])
def test_org_create_with_an_empty_name_fails(runner: CliRunner, data_dir: Path, name: str) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["org", "create", name, "--json"])

    _assert_one_line_error(result, "organization name must not be empty")
    assert _organization_count(_sqlite_url(data_dir)) == 0


@pytest.fixture
def postgres_scratch_url(worker_id_suffix: str) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own."""
    admin_url = asyncio.run(postgres_admin_url())
    name = f"rappit_cli_{worker_id_suffix}_{os.getpid()}"
    yield asyncio.run(recreate_database(admin_url, name))
    asyncio.run(drop_database(admin_url, name))


def test_org_create_on_postgres_needs_db_upgrade_first(
    runner: CliRunner, postgres_scratch_url: str
) -> None:
    env = {
        "RAPPIT_DATABASE_URL": postgres_scratch_url,
        "RAPPIT_SECRET_KEY": "a-real-secret-key-for-this-test-0123456789",
    }
    # A configured database is migrated by its operator, never implicitly.
    refused = runner.invoke(app, ["org", "create", "Acme", "--json"], env=env)
    _assert_one_line_error(refused, "the database has no schema yet: run `rappit db upgrade` first")

    upgraded = runner.invoke(app, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert "PostgreSQL" in upgraded.stdout
    assert f"schema created at revision {HEAD}" in upgraded.stdout

    created = runner.invoke(app, ["org", "create", "Acme", "--json"], env=env)
    assert created.exit_code == 0, created.output
    body = json.loads(created.stdout)
    auth, name, count = asyncio.run(_authenticate(postgres_scratch_url, body["api_key"]))
    assert (str(auth.organization_id), name, count) == (body["organization_id"], "Acme", 1)


# --- configuration errors ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["serve"], ["api"], ["org", "create", "Acme", "--json"]])
def test_production_without_secret_key_fails_with_one_line(
    runner: CliRunner, data_dir: Path, command: list[str]
) -> None:
    result = runner.invoke(app, command, env={"RAPPIT_ENV": "production"})

    _assert_one_line_error(result, "RAPPIT_SECRET_KEY must be set to a random value in production")
    assert not (data_dir / "secret_key").exists()


@pytest.mark.parametrize("command", [["db", "upgrade"], ["org", "create", "Acme"], ["api"]])
def test_unsupported_database_url_fails_with_one_line(
    runner: CliRunner, command: list[str]
) -> None:
    result = runner.invoke(app, command, env={"RAPPIT_DATABASE_URL": "mysql://root@db/rappit"})
    _assert_one_line_error(result, "RAPPIT_DATABASE_URL must be a PostgreSQL URL")


def test_unreachable_database_fails_with_one_line_without_the_password(
    runner: CliRunner,
) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    url = "postgresql://rappit:s3cret-pw@127.0.0.1:1/rappit"
    result = runner.invoke(app, ["db", "upgrade"], env={"RAPPIT_DATABASE_URL": url})

    _assert_one_line_error(result, "cannot connect to PostgreSQL 127.0.0.1:1/rappit as rappit")
    assert "s3cret-pw" not in result.output


def test_invalid_setting_fails_with_one_line(runner: CliRunner) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env={"RAPPIT_PORT": "eighty"})
    _assert_one_line_error(result, "invalid configuration: RAPPIT_PORT")


def test_api_refuses_a_database_without_schema(runner: CliRunner) -> None:
    result = runner.invoke(app, ["api"])
    _assert_one_line_error(result, "the database has no schema yet: run `rappit db upgrade` first")


@pytest.mark.parametrize("command", ["serve", "api"])
def test_a_port_in_use_fails_with_one_line_before_anything_starts(
    runner: CliRunner, data_dir: Path, command: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = runner.invoke(app, [command, "--host", "127.0.0.1", "--port", str(port)])

    _assert_one_line_error(
        result,
        f"127.0.0.1:{port} is already in use (another Rappit still running?): stop it, or "
        "choose another port with --port or RAPPIT_PORT",
    )
    assert not data_dir.exists()  # no database, no secret key, no embedded Redis


def test_a_host_that_cannot_be_resolved_fails_with_one_line(runner: CliRunner) -> None:
    result = runner.invoke(app, ["serve", "--host", "no-such-host.invalid", "--port", "8000"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot listen on no-such-host.invalid: ")
    assert len(result.output.strip().splitlines()) == 1


# --- serve, as a real process ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_starts_answers_probes_and_stops_on_sigterm(tmp_path: Path) -> None:
    executable = Path(sys.executable).parent / "rappit"
    assert executable.exists(), "the rappit command is installed with `pip install -e .`"
    port = _free_port()
    data_dir = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAPPIT_")}
    env["RAPPIT_DATA_DIR"] = str(data_dir)
    env["COLUMNS"] = "250"  # the banner's long temporary paths stay on one line
    base = f"http://127.0.0.1:{port}"
    # Files, not pipes: a full pipe would block the server while the test waits for it.
    with (tmp_path / "stdout").open("w+") as stdout, (tmp_path / "stderr").open("w+") as stderr:
        process = subprocess.Popen(
            [str(executable), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, f"serve exited early: {stderr.read()}"
                try:
                    health = httpx.get(f"{base}/healthz", timeout=2)
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not answer /healthz within 30 s"
                time.sleep(0.2)
            assert health.json() == {"status": "ok"}
            ready = httpx.get(f"{base}/readyz", timeout=5)
            assert ready.status_code == 200
            assert ready.json()["checks"]["database"] == "ok"

            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stdout.seek(0)
        banner = stdout.read()

    assert exit_code == 0
    assert f"{base}/docs" in banner
    assert f"SQLite file {(data_dir / 'rappit.db').resolve()}" in banner
    assert 'rappit org create "My Shop"' in banner
    assert (data_dir / "secret_key").exists()
    assert _sqlite_tables(data_dir) == MODEL_TABLES | {"alembic_version"}
