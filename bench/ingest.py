"""Shopify webhooks through Rappit, against bare baselines in the same run.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 64] [--orders N]
                                     [--processes 2] [--concurrency 8]

Creates a scratch database on the PostgreSQL server at ``--postgres-url`` (dropped at the
end), migrates it, and writes the fixture straight into it: an organisation, a Shopify channel
with a known webhook secret, a warehouse and ``--skus`` SKUs with ample stock, each linked to a
Shopify variant. Every request is a realistic ``orders/create`` body (built like the test
suite's payloads), signed with the channel's secret, with an ``X-Shopify-Webhook-Id`` of its
own, so each one is recorded ("enqueued"), none is a duplicate. Two measurements:

1. *Ingest*: ``rappit api`` (one uvicorn process, PostgreSQL, Redis with a key prefix of this
   run, no workers) loaded by ``wrk`` on 127.0.0.1 with ``--connections`` connections for
   ``--seconds``, after an uncounted warm-up. Baseline: a bare FastAPI app with one POST route
   that reads the body and answers ``{"status": "enqueued"}``, served by uvicorn with the same
   options (this script run with ``--serve-bare``), same wrk settings, same requests. Afterwards
   the webhook_events rows must equal the "enqueued" answers, the jobs waiting in Redis must
   equal the rows, and nothing may have answered other than 200.
2. *End to end*: ``--orders`` signed ``orders/create`` deliveries sent by wrk to ``rappit
   api`` while ``--processes`` ``rappit worker --queue webhook-processing --concurrency N``
   processes run; the clock runs from the first request to the last order counted ``RESERVED``
   in the orders table (polled every 20 ms). Baseline: the same number of bare ``bullmq.Worker``
   processes (this script run with ``--bare-worker``) with the same concurrency and a no-op
   processor; the clock runs from the first ``addBulk`` of N jobs to the queue's completed
   count reaching N. Both sides get an uncounted warm-up batch first.

wrk gets its requests from a file of pre-signed deliveries that a small Lua script cycles
through. Instead of cutting requests off at the end of the duration (which would leave
deliveries recorded without a counted answer), the script stops starting new requests when
time is up, waits for those in flight, and reports; its own clock gives the rate.

Everything runs on this machine over loopback; servers, workers, the scratch database and the
run's Redis keys are removed at the end. The results are printed and written into
docs/benchmarks.md between this script's markers. Numbers are only comparable within one run:
the ratio is the result.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/queue.py would shadow the
# standard library's ``queue`` module (redis-py imports it): it goes last instead, where
# ``import benchkit`` still finds the shared helpers.
_HERE = str(Path(__file__).resolve().parent)
if sys.path and str(Path(sys.path[0] or ".").resolve()) == _HERE:
    del sys.path[0]
sys.path.append(_HERE)
# The repository root is needed for the test suite's payload builders.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import version as package_version
from typing import Any

import asyncpg
import benchkit
import redis
from bullmq import Job, Queue, Worker
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rich.console import Console
from rich.table import Table
from services import (
    ROOT,
    Service,
    free_port,
    pids_named,
    rappit_command,
    require_loopback,
    scratch_database,
    start_service,
    stop_services,
    wait_for_http,
    wait_for_text,
)
from sqlalchemy.engine import make_url

from rappit import __version__
from rappit.kit.logging import logging_config
from rappit.kit.migrations import upgrade
from rappit.queues.connection import connection_kwargs, redacted
from rappit.queues.names import QueueName
from tests.support.webhook_fixture import build_fixture, order_payload, sign

SHOP = "bench-ingest.myshopify.com"
TOPIC = "orders/create"
QUEUE = QueueName.WEBHOOK_PROCESSING
BARE_JOB = "bench.noop"
# Order ids of the two measurements never meet.
INGEST_ORDER_BASE = 9_000_000_000_000
E2E_ORDER_BASE = 5_000_000_000_000
# Distinct signed bodies the ingest load cycles through (each request still has its own
# webhook id, which is what the inbox deduplicates on).
INGEST_BODIES = 1000
POLL_S = 0.02
# Uncounted loads before each measurement.
WARMUP_S = 2.0
WARMUP_ORDERS = 100
# A request still unanswered this long after the load stopped is a failure of the run.
DRAIN_TIMEOUT_S = 60.0
INGEST_THROUGHPUT_TARGET = 0.5
INGEST_P99_TARGET_MS = 50.0
E2E_TARGET = 0.5
DOCS = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- bench/ingest.py: start -->"
END_MARK = "<!-- bench/ingest.py: end -->"

console = Console()

# The wrk side. Lines of the data file: topic, signature, webhook id, body (tab-separated; the
# JSON bodies hold no raw tabs or newlines). Arguments: data file, mode, seconds, tag.
#   mode "seconds": cycle through the file for that long; each request gets a webhook id of its
#                   own (<tag>-<thread>-<n>); the signature covers only the body.
#   mode "once":    each thread sends its share of the lines exactly once, with the line's id.
# Either way a connection starts no new request once done (delay() parks it for an hour), the
# requests in flight are answered, and each thread then prints "drained"; the runner then ends
# wrk with SIGINT. Counted per thread: answers by kind, first send and last answer (wall clock
# through LuaJIT's FFI).
LUA_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")
local function now()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local lines = {}
local mode, deadline, tag, reported
local planned = 0
local headers = {}

function init(args)
  local path = args[1]
  mode = args[2]
  local seconds = tonumber(args[3])
  local nthreads = tonumber(args[4])
  tag = args[5]
  local index = 0
  for line in io.lines(path) do
    local topic, signature, webhook_id, body =
      line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if mode ~= "once" or index % nthreads == id then
      lines[#lines + 1] =
        {topic = topic, signature = signature, webhook_id = webhook_id, body = body}
    end
    index = index + 1
  end
  sent, received, enqueued, duplicate, other, failed = 0, 0, 0, 0, 0, 0
  first, last = 0, 0
  deadline = now() + seconds
  reported = false
  headers["Content-Type"] = "application/json"
  headers["X-Shopify-Shop-Domain"] = args[6]
  headers["X-Shopify-API-Version"] = "2026-10"
  headers["X-Shopify-Triggered-At"] = "2026-03-01T11:00:00.877041743Z"
end

local function finished_sending()
  if mode == "once" then
    return planned >= #lines
  end
  return now() >= deadline
end

local function report_if_drained()
  if not reported and received == planned and finished_sending() then
    reported = true
    io.write("drained " .. id .. "\n")
    io.flush()
  end
end

function delay()
  if not finished_sending() then
    planned = planned + 1
    return 0
  end
  report_if_drained()
  return 3600000
end

function request()
  if planned == 0 then
    -- wrk's own check of the script (before any connection asked delay()): never sent.
    return wrk.format("POST", "/webhooks/shopify/" .. lines[1].topic, headers, lines[1].body)
  end
  sent = sent + 1
  if first == 0 then first = now() end
  local line
  local webhook_id
  if mode == "once" then
    line = lines[sent]
    webhook_id = line.webhook_id
  else
    line = lines[(sent - 1) % #lines + 1]
    webhook_id = tag .. "-" .. id .. "-" .. sent
  end
  headers["X-Shopify-Topic"] = line.topic
  headers["X-Shopify-Hmac-Sha256"] = line.signature
  headers["X-Shopify-Webhook-Id"] = webhook_id
  headers["X-Shopify-Event-Id"] = "event-" .. webhook_id
  return wrk.format("POST", "/webhooks/shopify/" .. line.topic, headers, line.body)
end

function response(status, response_headers, body)
  received = received + 1
  last = now()
  if status == 200 then
    if string.find(body, '"enqueued"', 1, true) then
      enqueued = enqueued + 1
    elseif string.find(body, '"duplicate"', 1, true) then
      duplicate = duplicate + 1
    else
      other = other + 1
    end
  else
    failed = failed + 1
  end
  report_if_drained()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%.0f duration_us=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f "
    .. "connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
  for _, t in ipairs(threads) do
    io.write(string.format(
      "THREAD id=%.0f sent=%.0f received=%.0f enqueued=%.0f duplicate=%.0f other=%.0f "
      .. "failed=%.0f first=%.6f last=%.6f\n",
      t:get("id"), t:get("sent"), t:get("received"), t:get("enqueued"), t:get("duplicate"),
      t:get("other"), t:get("failed"), t:get("first"), t:get("last")))
  end
  io.flush()
end
"""


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One wrk run."""

    answered: int
    seconds: float  # first request sent to last answer received, over all threads
    p50_ms: float
    p99_ms: float
    max_ms: float
    enqueued: int
    duplicate: int
    other_200: int
    not_200: int
    socket_errors: int
    # CPU seconds per wall second while wrk ran, by process group.
    cpu: dict[str, float] = field(default_factory=dict)
    # PostgreSQL sessions (connections) of the scratch database that ended during the run.
    pg_sessions: int | None = None

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def server_cpu_ms(self) -> float:
        """CPU time of the server process per answered request."""
        return self.cpu.get("server", 0.0) / self.per_second * 1000 if self.per_second else 0.0


@dataclass(frozen=True)
class Flow:
    """One end-to-end run: N items from the first send to the last one done."""

    items: int
    seconds: float
    # CPU seconds per item, by process group.
    cpu_ms_per_item: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.items / self.seconds


# --- processes ---------------------------------------------------------------------------------


class CpuMeter:
    """CPU time of named groups of processes between start() and stop(). PostgreSQL and Redis
    are found by process name (every backend counts, including ones opened meanwhile)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.started: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        values = {name: benchkit.cpu_seconds(pids) for name, pids in self.groups.items()}
        values["PostgreSQL"] = benchkit.cpu_seconds(pids_named("postgres"))
        values["Redis"] = benchkit.cpu_seconds(pids_named("redis-server"))
        return values

    def start(self) -> None:
        self.started = self._read()

    def stop(self) -> dict[str, float]:
        ended = self._read()
        self.used = {name: ended[name] - self.started.get(name, 0.0) for name in ended}
        return self.used


# --- the bare sides (run as child processes of this script) ------------------------------------


def create_bare_app() -> FastAPI:
    """The baseline web app: one POST route that reads the body and answers like Rappit."""
    app = FastAPI()

    @app.post("/webhooks/shopify/{topic:path}", response_model=None)
    async def receive(topic: str, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "enqueued"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_bare(arguments: argparse.Namespace) -> None:
    """Serve the bare app the way ``rappit api`` serves Rappit's: ``uvicorn.run`` with a
    factory import string, one process, the same host and logging configuration."""
    import uvicorn

    uvicorn.run(
        "__main__:create_bare_app",
        factory=True,
        host="127.0.0.1",
        port=arguments.port,
        workers=1,
        log_config=logging_config(os.environ.get("RAPPIT_LOG_LEVEL", "INFO")),
    )


async def bare_noop(_job: Job, _token: str) -> None:
    return None


async def bare_worker(arguments: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    worker = Worker(
        QUEUE.value,
        bare_noop,
        {
            "connection": connection_kwargs(arguments.redis_url),
            "prefix": arguments.prefix,
            "concurrency": arguments.concurrency,
        },
    )
    await worker.client.ping()
    print("bare worker ready", flush=True)
    await stop.wait()
    await worker.close()


# --- fixture and requests ----------------------------------------------------------------------


def write_deliveries(
    path: Path, payloads: list[dict[str, Any]], secret: str, id_prefix: str
) -> int:
    """Pre-signed deliveries for wrk, one a line; returns the units ordered in all of them."""
    units = 0
    with path.open("w") as output:
        for index, payload in enumerate(payloads):
            body = json.dumps(payload, separators=(",", ":"))
            if "\t" in body or "\n" in body:  # json.dumps escapes both; the format relies on it
                raise ValueError("a body with a raw tab or newline cannot go in the request file")
            signature = sign(body.encode(), secret)
            output.write(f"{TOPIC}\t{signature}\t{id_prefix}-{index}\t{body}\n")
            units += sum(line["quantity"] for line in payload["line_items"])
    return units


# --- wrk ---------------------------------------------------------------------------------------


def _fields(line: str) -> dict[str, float]:
    return {key: float(value) for key, value in (item.split("=", 1) for item in line.split()[1:])}


async def run_wrk(
    arguments: argparse.Namespace,
    port: int,
    script: Path,
    data: Path,
    mode: str,
    seconds: float,
    tag: str,
    meter: CpuMeter | None = None,
) -> Load:
    threads = arguments.threads
    limit = int(seconds + DRAIN_TIMEOUT_S) if mode == "seconds" else 3600
    command = [
        "wrk", "-t", str(threads), "-c", str(arguments.connections), "-d", f"{limit}s",
        "--timeout", "30s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}/",
        str(data), mode, f"{seconds:g}", str(threads), tag, SHOP,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    if meter is not None:
        meter.start()
    started = time.monotonic()
    output: list[str] = []
    drained = 0
    try:
        while drained < threads:
            remaining = started + limit - time.monotonic()
            line = await asyncio.wait_for(process.stdout.readline(), max(remaining, 0.1))
            if not line:
                break
            text = line.decode(errors="replace")
            output.append(text)
            drained += text.startswith("drained ")
    except TimeoutError:
        pass
    wall = time.monotonic() - started
    used = meter.stop() if meter is not None else {}
    if process.returncode is None:
        process.send_signal(signal.SIGINT)  # wrk then stops its threads and reports
    rest, errors = await asyncio.wait_for(process.communicate(), 30)
    output.extend(rest.decode(errors="replace").splitlines())
    if drained < threads:
        raise RuntimeError(
            f"wrk did not finish its requests ({drained} of {threads} threads drained):\n"
            + "".join(output)[-2000:]
            + errors.decode(errors="replace")[-2000:]
        )
    results = [line for line in output if line.startswith("RESULT ")]
    per_thread = [_fields(line) for line in output if line.startswith("THREAD ")]
    if not results or len(per_thread) != threads:
        raise RuntimeError("wrk printed no results:\n" + "".join(output)[-2000:])
    summary = _fields(results[0])
    for thread in per_thread:
        if thread["sent"] != thread["received"]:
            raise RuntimeError(f"wrk thread {thread['id']:.0f} has unanswered requests: {thread}")
    first = min(t["first"] for t in per_thread if t["first"] > 0)
    last = max(t["last"] for t in per_thread)
    return Load(
        answered=int(sum(t["received"] for t in per_thread)),
        seconds=last - first,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        enqueued=int(sum(t["enqueued"] for t in per_thread)),
        duplicate=int(sum(t["duplicate"] for t in per_thread)),
        other_200=int(sum(t["other"] for t in per_thread)),
        not_200=int(sum(t["failed"] for t in per_thread)),
        socket_errors=int(sum(summary[k] for k in ("connect", "read", "write", "timeout"))),
        cpu={name: value / wall for name, value in used.items()},
    )


def check_clean(load: Load, label: str) -> None:
    problems = []
    if load.not_200:
        problems.append(f"{load.not_200} answer(s) other than 200")
    if load.duplicate:
        problems.append(f"{load.duplicate} duplicate(s)")
    if load.other_200:
        problems.append(f"{load.other_200} 200 answer(s) that are not 'enqueued'")
    if load.socket_errors:
        problems.append(f"{load.socket_errors} socket error(s) or timeout(s)")
    if problems:
        raise RuntimeError(f"{label}: " + ", ".join(problems))


# --- the measurements --------------------------------------------------------------------------


@dataclass
class Context:
    arguments: argparse.Namespace
    dsn: str  # postgresql://… of the scratch database
    env: dict[str, str]  # of Rappit's processes
    logs: Path
    run_prefix: str
    script: Path  # wrk's Lua script
    expected_units: int  # units ordered by all end-to-end orders, warm-up included
    services: list[Service] = field(default_factory=list)


def rappit_env(context: Context, prefix: str) -> dict[str, str]:
    env = {**context.env, "RAPPIT_QUEUE_PREFIX": prefix}
    if context.arguments.pool_size:
        env["RAPPIT_DATABASE_POOL_SIZE"] = str(context.arguments.pool_size)
    return env


async def start_rappit_api(context: Context, prefix: str, name: str) -> tuple[Service, int]:
    port = free_port()
    service = start_service(
        name,
        [*rappit_command(), "api", "--host", "127.0.0.1", "--port", str(port)],
        rappit_env(context, prefix),
        context.logs,
    )
    context.services.append(service)
    await wait_for_http(service, port)
    return service, port


async def start_bare_api(context: Context, name: str) -> tuple[Service, int]:
    port = free_port()
    service = start_service(
        name,
        [sys.executable, __file__, "--serve-bare", "--port", str(port)],
        context.env,
        context.logs,
    )
    context.services.append(service)
    await wait_for_http(service, port)
    return service, port


async def stop(context: Context, services: list[Service]) -> None:
    await asyncio.to_thread(stop_services, services)
    for service in services:
        context.services.remove(service)


async def fetch_text(dsn: str, query: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(await connection.fetchval(query))
    finally:
        await connection.close()


async def count(dsn: str, query: str, *args: Any) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval(query, *args))
    finally:
        await connection.close()


async def queue_counts(url: str, prefix: str) -> dict[str, int]:
    queue = Queue(QUEUE.value, {"connection": connection_kwargs(url), "prefix": prefix})
    try:
        raw = await queue.getJobCounts("wait", "active", "completed", "failed")
        return {key: int(value) for key, value in raw.items()}
    finally:
        await queue.close()


async def ingest_side(
    context: Context, side: str, data: Path, tag: str | None = None
) -> tuple[Load, Load]:
    """Warm-up and measured load against one side; Rappit's results are checked against the
    database and the queue."""
    arguments = context.arguments
    prefix = f"{context.run_prefix}-ingest"
    rows_before = await count(context.dsn, "SELECT count(*) FROM webhook_events")
    if side == "rappit":
        server, port = await start_rappit_api(context, prefix, "ingest-rappit-api")
    else:
        server, port = await start_bare_api(context, "ingest-bare-api")
    try:
        warmup = await run_wrk(
            arguments, port, context.script, data, "seconds", WARMUP_S, f"{tag or side}-warmup"
        )
        check_clean(warmup, f"{side} ingest warm-up")
        meter = CpuMeter({"server": [server.pid]})
        sessions = await asyncpg.connect(context.dsn)
        try:
            query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            sessions_before = int(await sessions.fetchval(query))
            load = await run_wrk(
                arguments, port, context.script, data, "seconds", arguments.seconds,
                f"{tag or side}-run", meter,
            )  # fmt: skip
            sessions_during = int(await sessions.fetchval(query)) - sessions_before
        finally:
            await sessions.close()
        check_clean(load, f"{side} ingest")
        if side == "rappit":
            load = replace(load, pg_sessions=sessions_during)
    finally:
        await stop(context, [server])
    if side == "rappit":
        rows = await count(context.dsn, "SELECT count(*) FROM webhook_events") - rows_before
        answered = warmup.enqueued + load.enqueued
        if rows != answered:
            raise RuntimeError(f"{rows} webhook_events rows for {answered} 'enqueued' answers")
        jobs = await queue_counts(arguments.redis_url, prefix)
        waiting = jobs.get("wait", 0)
        if waiting != rows:
            raise RuntimeError(f"{waiting} job(s) waiting in Redis for {rows} recorded events")
        console.print(
            f"  checked: {rows:,} webhook_events rows = {answered:,} 'enqueued' answers "
            f"= {waiting:,} jobs waiting in Redis; no other answer"
        )
    return warmup, load


async def wait_until(
    probe: Callable[[], Awaitable[int]], target: int, limit_s: float, what: str
) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        value = await probe()
        if value >= target:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {value} of {target} {what} after {limit_s:g} s")
        await asyncio.sleep(POLL_S)


async def e2e_rappit(context: Context, warmup_data: Path, data: Path, orders: int) -> Flow:
    arguments = context.arguments
    prefix = f"{context.run_prefix}-e2e"
    started_services: list[Service] = []
    try:
        server, port = await start_rappit_api(context, prefix, "e2e-rappit-api")
        started_services.append(server)
        workers = []
        for index in range(arguments.processes):
            worker = start_service(
                f"e2e-rappit-worker-{index}",
                [*rappit_command(), "worker", "--queue", QUEUE.value,
                 "--concurrency", str(arguments.concurrency)],
                rappit_env(context, prefix),
                context.logs,
            )  # fmt: skip
            context.services.append(worker)
            started_services.append(worker)
            workers.append(worker)
        for worker in workers:
            await wait_for_text(worker, "worker started")

        connection = await asyncpg.connect(context.dsn)

        async def reserved() -> int:
            return int(
                await connection.fetchval("SELECT count(*) FROM orders WHERE status = 'RESERVED'")
            )

        try:
            warm = await run_wrk(arguments, port, context.script, warmup_data, "once", 0, "e2e-w")
            check_clean(warm, "end-to-end warm-up")
            await wait_until(reserved, WARMUP_ORDERS, 120, "warm-up orders reserved")

            meter = CpuMeter({"API": [server.pid], "workers": [worker.pid for worker in workers]})
            meter.start()
            started = time.perf_counter()
            sending = asyncio.create_task(
                run_wrk(arguments, port, context.script, data, "once", 0, "e2e")
            )
            total = WARMUP_ORDERS + orders
            waiting = asyncio.create_task(
                wait_until(reserved, total, arguments.timeout, "orders reserved")
            )
            done, _ = await asyncio.wait({sending, waiting}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a failed side ends the run here
            load = await sending
            await waiting
            elapsed = time.perf_counter() - started
            used = meter.stop()
            check_clean(load, "end-to-end ingest")
        finally:
            await connection.close()
    finally:
        await stop(context, started_services)

    # Every order reserved in full, every event completed, the stock rows agree.
    orders_total = await count(context.dsn, "SELECT count(*) FROM orders")
    not_reserved = await count(
        context.dsn, "SELECT count(*) FROM orders WHERE status <> 'RESERVED'"
    )
    completed = await count(
        context.dsn, "SELECT count(*) FROM webhook_events WHERE status = 'COMPLETED'"
    )
    failed = await count(
        context.dsn, "SELECT count(*) FROM webhook_events WHERE status IN ('FAILED', 'SKIPPED')"
    )
    reserved_units = await count(context.dsn, "SELECT coalesce(sum(reserved), 0) FROM stock_levels")
    held_units = await count(
        context.dsn,
        "SELECT coalesce(sum(quantity), 0) FROM reservations WHERE released_at IS NULL",
    )
    expected = WARMUP_ORDERS + orders
    if (orders_total, not_reserved, completed, failed) != (expected, 0, expected, 0):
        raise RuntimeError(
            f"end to end: {orders_total} orders ({not_reserved} not RESERVED), {completed} "
            f"events COMPLETED, {failed} FAILED or SKIPPED; expected {expected} of each"
        )
    if reserved_units != held_units or reserved_units != context.expected_units:
        raise RuntimeError(
            f"stock says {reserved_units} units reserved, reservations {held_units}, the orders "
            f"asked for {context.expected_units}"
        )
    console.print(
        f"  checked: {orders_total:,} orders all RESERVED, {completed:,} events COMPLETED, "
        f"{reserved_units:,} units reserved = units ordered"
    )
    return Flow(
        orders,
        elapsed,
        {name: value / orders * 1000 for name, value in used.items()},
        note=f"the deliveries were all answered after {load.seconds:.1f} s",
    )


async def e2e_bare(context: Context, jobs: int) -> Flow:
    arguments = context.arguments
    prefix = f"{context.run_prefix}-bare"
    workers = []
    for index in range(arguments.processes):
        worker = start_service(
            f"e2e-bare-worker-{index}",
            [sys.executable, __file__, "--bare-worker", "--prefix", prefix,
             "--redis-url", arguments.redis_url, "--concurrency", str(arguments.concurrency)],
            context.env,
            context.logs,
        )  # fmt: skip
        context.services.append(worker)
        workers.append(worker)
    queue = Queue(
        QUEUE.value, {"connection": connection_kwargs(arguments.redis_url), "prefix": prefix}
    )
    try:
        for worker in workers:
            await wait_for_text(worker, "bare worker ready")

        async def completed() -> int:
            counts = await queue.getJobCounts("completed", "failed")
            if int(counts.get("failed", 0)):
                raise RuntimeError(f"{counts['failed']} bare job(s) failed")
            return int(counts.get("completed", 0))

        async def add(first: int, number: int) -> None:
            for start in range(first, first + number, 500):
                batch = range(start, min(start + 500, first + number))
                await queue.addBulk([{"name": BARE_JOB, "data": {"i": i}} for i in batch])

        await add(0, WARMUP_ORDERS)
        await wait_until(completed, WARMUP_ORDERS, 120, "warm-up jobs completed")
        meter = CpuMeter({"workers": [worker.pid for worker in workers]})
        meter.start()
        started = time.perf_counter()
        adding = asyncio.create_task(add(WARMUP_ORDERS, jobs))
        await wait_until(completed, WARMUP_ORDERS + jobs, arguments.timeout, "jobs completed")
        await adding
        elapsed = time.perf_counter() - started
        used = meter.stop()
    finally:
        await queue.close()
        await stop(context, workers)
    return Flow(jobs, elapsed, {name: value / jobs * 1000 for name, value in used.items()})


# --- environment and report --------------------------------------------------------------------


def _redis_description(url: str) -> str:
    client = redis.Redis(**connection_kwargs(url), decode_responses=True)
    try:
        version = client.info("server").get("redis_version", "unknown")
        appendonly = client.config_get("appendonly").get("appendonly", "?")
    finally:
        client.close()
    return f"{version} (appendonly {appendonly}, same machine, reached over TCP)"


def _wrk_version() -> str:
    output = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    match = re.search(r"wrk (\S+)", output)
    return match.group(1) if match else "unknown"


def _command() -> str:
    arguments = []
    for argument in sys.argv[1:]:
        if "://" in argument:  # a URL may carry a password
            argument = (
                redacted(argument)
                if argument.startswith(("redis", "unix"))
                else (make_url(argument).render_as_string(hide_password=True))
            )
        arguments.append(argument)
    return " ".join([".venv/bin/python bench/ingest.py", *arguments])


def _cpu_cell(values: dict[str, float], names: tuple[str, ...], unit: str) -> str:
    return " / ".join(
        f"{values.get(name, 0.0) * (100 if unit == '%' else 1):.0f}" for name in names
    )


@dataclass(frozen=True)
class Report:
    rappit_ingest: Load
    bare_ingest: Load
    rappit_flow: Flow
    bare_flow: Flow

    @property
    def ingest_ratio(self) -> float:
        return self.rappit_ingest.per_second / self.bare_ingest.per_second

    @property
    def flow_ratio(self) -> float:
        return self.rappit_flow.per_second / self.bare_flow.per_second

    @property
    def ingest_met(self) -> bool:
        return self.ingest_ratio >= INGEST_THROUGHPUT_TARGET

    @property
    def p99_met(self) -> bool:
        return self.rappit_ingest.p99_ms <= INGEST_P99_TARGET_MS

    @property
    def flow_met(self) -> bool:
        return self.flow_ratio >= E2E_TARGET


INGEST_COLUMNS = (
    "side", "requests", "requests/s", "p50 ms", "p99 ms", "max ms", "not 200",
    "server CPU ms/request", "CPU % server / PostgreSQL / Redis", "PostgreSQL connections closed",
)  # fmt: skip
FLOW_COLUMNS = ("side", "orders / jobs", "seconds", "per second", "CPU ms per item")


def _ingest_cells(side: str, load: Load) -> list[str]:
    return [
        side,
        f"{load.answered:,}",
        f"{load.per_second:,.0f}",
        f"{load.p50_ms:.1f}",
        f"{load.p99_ms:.1f}",
        f"{load.max_ms:.0f}",
        str(load.not_200),
        f"{load.server_cpu_ms:.2f}",
        _cpu_cell(load.cpu, ("server", "PostgreSQL", "Redis"), "%"),
        "-" if load.pg_sessions is None else f"{load.pg_sessions:,}",
    ]


def _flow_cells(side: str, flow: Flow) -> list[str]:
    parts = [f"{name} {value:.1f}" for name, value in flow.cpu_ms_per_item.items() if value >= 0.05]
    return [
        side,
        f"{flow.items:,}",
        f"{flow.seconds:.2f}",
        f"{flow.per_second:,.0f}",
        ", ".join(parts),
    ]


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def render_markdown(
    report: Report,
    machine: list[tuple[str, str]],
    arguments: argparse.Namespace,
    body_bytes: float,
) -> str:
    r = report
    lines = [
        START_MARK,
        "## Shopify webhooks: ingest and end to end (`bench/ingest.py`)",
        "",
        "Every request is a realistic, correctly signed `orders/create` delivery (two lines "
        "of different SKUs, about "
        f"{body_bytes / 1024:.1f} KiB of JSON) with an `X-Shopify-Webhook-Id` of its "
        "own, so each one is recorded, none is a duplicate. The load is `wrk` on 127.0.0.1 "
        "with a Lua script that cycles through pre-signed deliveries; when the time is up it "
        "starts no new request and waits for the ones in flight, so every delivery sent is "
        "answered and counted (the rate is answers over the time from the first request to "
        "the last answer). p50/p99/max are wrk's latency figures.",
        "",
        "*Ingest*: `rappit api` (uvicorn, one process, PostgreSQL scratch database, Redis; no "
        f"workers running) under {arguments.connections} connections for {arguments.seconds:g} s "
        f"after a {WARMUP_S:g} s warm-up. Baseline: a bare FastAPI app with one POST route "
        'that reads the body and answers `{"status": "enqueued"}`, served by `uvicorn.run` '
        "with the same options (one process, same logging configuration). After the Rappit "
        'run the script checks that the webhook_events rows equal the "enqueued" answers '
        "and the jobs waiting in Redis, and that nothing answered other than 200. *CPU %* is "
        "CPU time per wall-clock second while wrk ran (100 % = one core).",
        "",
        f"*End to end*: {arguments.orders:,} deliveries sent by wrk to `rappit api` while "
        f"{arguments.processes} `rappit worker --queue webhook-processing --concurrency "
        f"{arguments.concurrency}` processes run, from the first request to the last order "
        "counted `RESERVED` in the orders table (polled every 20 ms); every order reserves in "
        f"full ({arguments.skus:,} SKUs with ample stock, linked to their Shopify variants). "
        "Baseline: the same number of bare `bullmq.Worker` processes with the same "
        "concurrency and a no-op processor, from the first `addBulk` of as many jobs to the "
        f"queue's completed count reaching it. Both sides process {WARMUP_ORDERS} uncounted "
        "items first. *CPU ms per item*: CPU time of each group of processes over the run, "
        "per order or job.",
        "",
        f"Command: `{_command()}`. Servers and workers log at INFO (the production default) "
        "to files.",
        "",
        *[f"- {label}: {value}" for label, value in machine],
        "",
        "| " + " | ".join(INGEST_COLUMNS) + " |",
        "|---|" + "---:|" * (len(INGEST_COLUMNS) - 1),
        "| " + " | ".join(_ingest_cells("Rappit", r.rappit_ingest)) + " |",
        "| " + " | ".join(_ingest_cells("bare FastAPI", r.bare_ingest)) + " |",
        "",
        "| " + " | ".join(FLOW_COLUMNS) + " |",
        "|---|" + "---:|" * (len(FLOW_COLUMNS) - 1),
        "| " + " | ".join(_flow_cells("Rappit (webhook to RESERVED)", r.rappit_flow)) + " |",
        "| " + " | ".join(_flow_cells("bare BullMQ (no-op jobs)", r.bare_flow)) + " |",
        "",
        f"- Ingest throughput: Rappit/bare = {r.ingest_ratio:.2f} (target ≥ "
        f"{INGEST_THROUGHPUT_TARGET}): {_verdict(r.ingest_met)}.",
        f"- Ingest p99 at {arguments.connections} connections: {r.rappit_ingest.p99_ms:.1f} ms "
        f"(target ≤ {INGEST_P99_TARGET_MS:g} ms): {_verdict(r.p99_met)}.",
        f"- End to end: Rappit/bare = {r.flow_ratio:.2f} (target ≥ {E2E_TARGET}): "
        f"{_verdict(r.flow_met)} ({r.rappit_flow.note}).",
        "",
        "How a delivery is taken: the route and webhook secrets of the shop come from a "
        "per-process cache, and deliveries that arrive while a commit is under way share the "
        "next one (one multi-row INSERT, one commit, one `addBulk`; each is answered only "
        "once its own row is committed). ",
        "",
        "What sets the pace, from the same run: Rappit's API process spent "
        f"{r.rappit_ingest.server_cpu_ms:.1f} ms of CPU per delivery against "
        f"{r.bare_ingest.server_cpu_ms:.2f} ms for the bare app "
        f"({r.rappit_ingest.server_cpu_ms / r.bare_ingest.server_cpu_ms:.0f} times), with "
        f"PostgreSQL at {r.rappit_ingest.cpu.get('PostgreSQL', 0):.0%} of a core: one uvicorn "
        "process is CPU-bound in Python at about "
        f"{1000 / r.rappit_ingest.server_cpu_ms:,.0f} deliveries per second of its own CPU. "
        f"With {arguments.connections} requests always in flight, the time each waits follows "
        f"from that rate ({arguments.connections} / "
        f"{r.rappit_ingest.per_second:,.0f} per second = "
        f"{arguments.connections / r.rappit_ingest.per_second * 1000:,.0f} ms on average), so "
        f"a p99 within {INGEST_P99_TARGET_MS:g} ms at {arguments.connections} connections needs "
        f"well over {arguments.connections / INGEST_P99_TARGET_MS * 1000:,.0f} deliveries per "
        f"second; the bare app, at {r.bare_ingest.per_second:,.0f} per second, had a p99 of "
        f"{r.bare_ingest.p99_ms:.1f} ms itself on this machine. End to end, the worker "
        "processes spent "
        f"{r.rappit_flow.cpu_ms_per_item.get('workers', 0):.1f} ms of CPU per order (upsert, "
        "SKU resolution, reservations with their ledger rows, two commits) against "
        f"{r.bare_flow.cpu_ms_per_item.get('workers', 0):.2f} ms per no-op job.",
        "",
        "All processes (wrk, the servers, the workers, PostgreSQL, Redis) share the machine's "
        "CPUs, so each side's numbers include the cost of its neighbours; the ratios compare "
        "the two sides under the same conditions. PostgreSQL and Redis CPU count every process "
        "of those servers, including any other use of them during the run.",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


# --- main --------------------------------------------------------------------------------------


async def main(arguments: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    require_loopback(arguments.postgres_url, "--postgres-url")
    require_loopback(arguments.redis_url, "--redis-url")
    load_before = os.getloadavg()  # other work on the machine skews the numbers: say so
    name = f"rappit_bench_ingest_{os.getpid()}"
    run_prefix = f"rappit-bench-ingest-{os.getpid()}"
    async with scratch_database(arguments.postgres_url, name) as (dsn, url):
        server_version = await fetch_text(dsn, "SHOW server_version")
        secret_key = secrets.token_urlsafe(48)
        webhook_secret = "shpss_" + secrets.token_hex(16)
        context: Context | None = None
        try:
            with tempfile.TemporaryDirectory(prefix="rappit-bench-ingest-") as directory:
                work = Path(directory)
                console.print(f"Scratch database {name}: migrating and writing the fixture …")
                await asyncio.to_thread(upgrade, url)
                fixture = await build_fixture(url, secret_key, webhook_secret, arguments.skus, SHOP)
                rng = random.Random(7)
                ingest_data = work / "ingest.tsv"
                write_deliveries(
                    ingest_data,
                    [
                        order_payload(INGEST_ORDER_BASE + i, 1000 + i, fixture, rng)
                        for i in range(INGEST_BODIES)
                    ],
                    webhook_secret,
                    "unused",
                )
                body_bytes = ingest_data.stat().st_size / INGEST_BODIES
                warmup_data = work / "e2e-warmup.tsv"
                units = write_deliveries(
                    warmup_data,
                    [
                        order_payload(E2E_ORDER_BASE + i, 100_000 + i, fixture, rng)
                        for i in range(WARMUP_ORDERS)
                    ],
                    webhook_secret,
                    f"{run_prefix}-e2e-warmup",
                )
                e2e_data = work / "e2e.tsv"
                units += write_deliveries(
                    e2e_data,
                    [
                        order_payload(E2E_ORDER_BASE + WARMUP_ORDERS + i, 200_000 + i, fixture, rng)
                        for i in range(arguments.orders)
                    ],
                    webhook_secret,
                    f"{run_prefix}-e2e",
                )
                script = work / "deliveries.lua"
                script.write_text(LUA_SCRIPT)
                logs = work / "logs"
                logs.mkdir()
                env = {
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "RAPPIT_ENV": "production",
                    "RAPPIT_DATABASE_URL": dsn,
                    "RAPPIT_REDIS_URL": arguments.redis_url,
                    "RAPPIT_SECRET_KEY": secret_key,
                    "RAPPIT_DATA_DIR": str(work / "data"),
                    "RAPPIT_LOG_LEVEL": "INFO",
                }
                context = Context(arguments, dsn, env, logs, run_prefix, script, units)

                results: dict[str, Load] = {}
                for side in ("rappit", "bare") if arguments.only != "e2e" else ():
                    console.print(
                        f"Ingest, {side}: warm-up {WARMUP_S:g} s, then {arguments.seconds:g} s …"
                    )
                    _, load = await ingest_side(context, side, ingest_data)
                    results[side] = load
                    console.print(
                        f"  {load.per_second:,.0f} requests/s, p50 {load.p50_ms:.1f} ms, "
                        f"p99 {load.p99_ms:.1f} ms, CPU: server {load.cpu.get('server', 0):.0%}, "
                        f"PostgreSQL {load.cpu.get('PostgreSQL', 0):.0%}, "
                        f"Redis {load.cpu.get('Redis', 0):.0%}"
                        + (
                            f", {load.pg_sessions:,} PostgreSQL connections closed"
                            if load.pg_sessions is not None
                            else ""
                        )
                    )
                deleted = benchkit.delete_keys(arguments.redis_url, f"{run_prefix}-ingest:*")
                console.print(f"  deleted the ingest jobs ({deleted:,} Redis keys)")

                flows: dict[str, Flow] = {}
                if arguments.only != "ingest":
                    console.print(f"End to end, Rappit: {arguments.orders:,} orders …")
                    flow = await e2e_rappit(context, warmup_data, e2e_data, arguments.orders)
                    flows["rappit"] = flow
                    console.print(
                        f"  {flow.per_second:,.0f} orders/s ({flow.note}); CPU ms per order: "
                        + ", ".join(f"{k} {v:.1f}" for k, v in flow.cpu_ms_per_item.items())
                    )
                    console.print(f"End to end, bare BullMQ: {arguments.orders:,} no-op jobs …")
                    flow = await e2e_bare(context, arguments.orders)
                    flows["bare"] = flow
                    console.print(f"  {flow.per_second:,.0f} jobs/s")
                if arguments.keep_logs:
                    kept = Path(tempfile.mkdtemp(prefix="rappit-bench-ingest-logs-"))
                    shutil.copytree(logs, kept, dirs_exist_ok=True)
                    console.print(f"Logs kept in {kept}")
        finally:
            if context is not None and context.services:
                await asyncio.to_thread(stop_services, list(context.services))
            deleted = benchkit.delete_keys(arguments.redis_url, f"{run_prefix}-*")
            console.print(f"Deleted {deleted:,} Redis key(s) under {run_prefix}-*")
    console.print(f"Dropped {name}")

    if arguments.only:
        console.print(f"Only {arguments.only} was measured: docs/benchmarks.md is left as it is.")
        return
    report = Report(results["rappit"], results["bare"], flows["rappit"], flows["bare"])
    wide = Console(width=max(console.width, 130))
    table = Table(
        title=f"Ingest: {arguments.connections} connections, {arguments.seconds:g} s "
        f"(Rappit/bare {report.ingest_ratio:.2f})"
    )
    for column in INGEST_COLUMNS:
        table.add_column(column, justify="left" if column == "side" else "right")
    table.add_row(*_ingest_cells("Rappit", report.rappit_ingest))
    table.add_row(*_ingest_cells("bare FastAPI", report.bare_ingest))
    wide.print(table)
    table = Table(
        title=f"End to end: {arguments.processes} worker process(es) x concurrency "
        f"{arguments.concurrency} (Rappit/bare {report.flow_ratio:.2f})"
    )
    for column in FLOW_COLUMNS:
        table.add_column(
            column, justify="left" if column in ("side", "CPU ms per item") else "right"
        )
    table.add_row(*_flow_cells("Rappit (webhook to RESERVED)", report.rappit_flow))
    table.add_row(*_flow_cells("bare BullMQ (no-op jobs)", report.bare_flow))
    wide.print(table)
    wide.print(
        f"Ingest throughput ratio {report.ingest_ratio:.2f} (target ≥ "
        f"{INGEST_THROUGHPUT_TARGET}): {'met' if report.ingest_met else 'NOT met'}; "
        f"p99 {report.rappit_ingest.p99_ms:.1f} ms (target ≤ {INGEST_P99_TARGET_MS:g}): "
        f"{'met' if report.p99_met else 'NOT met'}; end-to-end ratio {report.flow_ratio:.2f} "
        f"(target ≥ {E2E_TARGET}): {'met' if report.flow_met else 'NOT met'}"
    )

    machine = benchkit.machine(
        ("PostgreSQL", f"{server_version} (default configuration, same machine)"),
        ("Redis", _redis_description(arguments.redis_url)),
        (
            "software",
            f"Python {platform.python_version()}, uvicorn {package_version('uvicorn')} "
            f"(uvloop, httptools), FastAPI {package_version('fastapi')}, bullmq "
            f"{package_version('bullmq')}, wrk {_wrk_version()} ({arguments.threads} threads), "
            f"Rappit {__version__}",
        ),
        load_before=load_before,
    )
    if arguments.docs:
        benchkit.write_section(
            render_markdown(report, machine, arguments, body_bytes), DOCS, START_MARK, END_MARK
        )
        console.print(f"Written to {DOCS}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server and a database to connect to while creating the scratch database",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured ingest load time")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--orders", type=int, default=2000, help="orders end to end")
    parser.add_argument(
        "--processes", type=int, default=2, help="worker processes end to end (each side)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="concurrency of each worker process"
    )
    parser.add_argument("--skus", type=int, default=1000, help="SKUs in the catalogue")
    parser.add_argument(
        "--pool-size",
        type=int,
        help="RAPPIT_DATABASE_POOL_SIZE for Rappit's processes [default: Rappit's own default]",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up end to end after")
    parser.add_argument(
        "--only", choices=("ingest", "e2e"), help="measure one part only (no docs update)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    parser.add_argument(
        "--no-docs", dest="docs", action="store_false", help="do not update docs/benchmarks.md"
    )
    # Internal: the bare sides, run as child processes.
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.connections % arguments.threads:
        parser.error("--connections must be a multiple of --threads")
    if arguments.orders < arguments.threads:
        parser.error("--orders must be at least --threads")
    return arguments


if __name__ == "__main__":
    parsed = parse_arguments()
    if parsed.serve_bare:
        serve_bare(parsed)
    elif parsed.bare_worker:
        asyncio.run(bare_worker(parsed))
    else:
        asyncio.run(main(parsed))
