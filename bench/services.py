"""Starting, watching and stopping the processes a benchmark runs (Rappit's API, workers and
scheduler, baselines, a private redis-server), and the loopback-only rule for its targets."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from rappit.queues.connection import connection_kwargs

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def start_service(name: str, command: list[str], env: dict[str, str], logs: Path) -> Service:
    log = logs / f"{name}.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Service(name, process, log)


async def wait_for_text(service: Service, text: str, *, occurrences: int = 1) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while service.tail().count(text) < occurrences:
        if service.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{service.name} did not start:\n{service.tail()}")
        await asyncio.sleep(0.05)


async def wait_for_http(service: Service, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
        while True:
            if service.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{service.name} did not start:\n{service.tail()}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)


def stop_services(services: list[Service]) -> None:
    for service in services:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
    for service in services:
        try:
            service.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


def rappit_command() -> list[str]:
    executable = Path(sys.executable).parent / "rappit"
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "rappit.cli"]


def require_loopback(url: str, what: str) -> None:
    """Load and scratch data go to this machine only."""
    if url.startswith("unix://"):
        return
    if url.startswith(("redis://", "rediss://")):
        host = connection_kwargs(url)["host"]
    else:
        host = make_url(url).host
    if host in (None, "", "localhost"):
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"{what} must be on this machine (a loopback address), not {host}")


@asynccontextmanager
async def scratch_database(postgres_url: str, name: str) -> AsyncIterator[tuple[str, str]]:
    """A database of its own for one run on the server of ``postgres_url`` (loopback only),
    dropped afterwards whatever happens; yields its asyncpg DSN and its SQLAlchemy URL."""
    require_loopback(postgres_url, "--postgres-url")
    admin_dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = make_url(admin_dsn).set(database=name)
    try:
        yield (
            base.render_as_string(hide_password=False),
            base.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
        )
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def add_postgres_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server and a database to connect to while creating the scratch database",
    )


def rappit_env(dsn: str, redis_url: str, secret_key: str, data_dir: Path) -> dict[str, str]:
    """The environment of Rappit's processes in a run: production mode, this run's database
    and Redis, INFO logs."""
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "RAPPIT_ENV": "production",
        "RAPPIT_DATABASE_URL": dsn,
        "RAPPIT_REDIS_URL": redis_url,
        "RAPPIT_SECRET_KEY": secret_key,
        "RAPPIT_DATA_DIR": str(data_dir),
        "RAPPIT_LOG_LEVEL": "INFO",
    }
