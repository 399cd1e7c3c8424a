"""A Shopify REST order backfill held to the shop's rate limit: Rappit's shared leaky bucket
against a client throttled at a fixed 2 requests per second, in the same run.

    .venv/bin/python bench/sync.py [--pages 100] [--page-size 25] [--processes 4]
                                   [--redis-url URL]

Starts the Shopify sandbox (``python -m rappit.sandbox.shopify``) in a process of its own with
one shop on the standard plan (a bucket of 40 requests leaking 2 per second, as Shopify's) and
``--pages`` x ``--page-size`` generated orders. A backfill reads every order of the shop
through ``GET orders.json?status=any`` in pages of ``--page-size``; with several processes,
each reads its own slice (a ``created_at_min``/``created_at_max`` window holding an equal share
of the orders), so every cell makes the same requests. Each cell starts from an empty sandbox
bucket and an empty request log.

- *Rappit*: each process pages with ``ShopifyClient.pages`` and a ``SharedLeakyBucket`` on its
  own Redis connection, built as the sync pullers build it (default settings, keys under this
  run's prefix), so the processes share one bucket for the shop.
- *fixed 2/s*: each process sends its requests on a fixed schedule, together 2 per second
  (one process every 0.5 s; four every 2 s each, staggered by 0.5 s), with plain ``httpx``:
  the obvious throttle that never overflows the bucket, and never uses its burst either.

Processes are real OS processes (this script with ``--child``); they start on one cue once
imported and connected. The clock runs from the first request to the last answer. Afterwards
the sandbox's request log gives the requests it answered and the 429s it sent, and the orders
read must be every order of the shop exactly once.

The measure: the achieved rate (requests answered / duration) over what the bucket allows in
that duration, starting empty: allowance = (40 + 2 x duration) / duration requests per second,
so the ratio is requests / (40 + 2 x duration). 1.0 means every request the bucket could take
was sent; a client that never exceeds the leak rate stays near 2 x duration / (40 + 2 x
duration). Target: Rappit at least 0.9, and no 429.

The results are printed and written into docs/benchmarks.md between this script's markers.
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

import argparse
import asyncio
import calendar
import inspect
import ipaddress
import itertools
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib.metadata import version as package_version
from typing import Any

import benchkit
import httpx
import redis
from rich.console import Console
from rich.table import Table

from rappit import __version__
from rappit.integrations.shopify.client import DEFAULT_API_VERSION, ShopifyClient, page_info_of
from rappit.kit.ratelimit import SharedLeakyBucket
from rappit.queues.connection import connection_kwargs, create_client, redacted
from rappit.sandbox.shopify.server import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- bench/sync.py: start -->"
END_MARK = "<!-- bench/sync.py: end -->"
SHOP = "bench-sync.myshopify.com"
# Shopify's standard plan, which the sandbox shop is on.
BURST = 40
LEAK_PER_S = 2.0
TARGET = 0.9
# The limiter's default margin (slots kept free), as the sync pullers use it.
MARGIN = float(inspect.signature(SharedLeakyBucket).parameters["margin"].default)
CELL_TIMEOUT_S = 900.0

console = Console()


# --- one backfill process ------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """The part of the backfill one process reads."""

    side: str  # rappit | fixed
    index: int
    processes: int
    api_base_url: str
    access_token: str
    created_at_min: str
    created_at_max: str
    page_size: int
    redis_url: str
    key_prefix: str
    result_path: str


@dataclass
class Done:
    started: float  # wall clock (the machine's one clock, shared by every process)
    finished: float
    pages: int
    order_ids: list[int]


def _params(work: Slice) -> dict[str, Any]:
    return {
        "status": "any",
        "created_at_min": work.created_at_min,
        "created_at_max": work.created_at_max,
    }


async def _rappit(work: Slice, go: asyncio.Future[None]) -> Done:
    redis_client = create_client(work.redis_url)
    # As the sync pullers build it: defaults, keys under "<prefix>:ratelimit".
    limiter = SharedLeakyBucket(redis_client, key_prefix=f"{work.key_prefix}:ratelimit")
    client = ShopifyClient(work.api_base_url, work.access_token, limiter, shop=SHOP)
    try:
        await go
        started = time.time()
        pages, ids = 0, list[int]()
        async for response in client.pages("orders.json", _params(work), limit=work.page_size):
            pages += 1
            ids.extend(order["id"] for order in response.json["orders"])
        return Done(started, time.time(), pages, ids)
    finally:
        await client.aclose()
        await redis_client.aclose()


async def _fixed_rate(work: Slice, go: asyncio.Future[None]) -> Done:
    interval = work.processes / LEAK_PER_S  # together: LEAK_PER_S requests per second
    offset = work.index / LEAK_PER_S
    url = f"{work.api_base_url}/admin/api/{DEFAULT_API_VERSION}/orders.json"
    async with httpx.AsyncClient(
        headers={"X-Shopify-Access-Token": work.access_token}, timeout=30, trust_env=False
    ) as http:
        await go
        started = time.time()
        clock = time.monotonic()
        params: dict[str, Any] = {**_params(work), "limit": work.page_size}
        sent = pages = 0
        ids: list[int] = []
        while True:
            await asyncio.sleep(max(0.0, clock + offset + sent * interval - time.monotonic()))
            response = await http.get(url, params=params)
            sent += 1
            if response.status_code == 429:
                continue  # sent again in the next slot (the sandbox's log counts it)
            response.raise_for_status()
            pages += 1
            ids.extend(order["id"] for order in response.json()["orders"])
            cursor = page_info_of(response, "next")
            if cursor is None:
                return Done(started, time.time(), pages, ids)
            params = {"limit": work.page_size, "page_info": cursor}


async def backfill(work: Slice) -> Done:
    """Connect, say ``ready``, wait for the cue on stdin, then read this slice."""
    go: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task((_rappit if work.side == "rappit" else _fixed_rate)(work, go))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.to_thread(sys.stdin.readline)
    go.set_result(None)
    return await task


def run_child(work: Slice) -> None:
    done = asyncio.run(backfill(work))
    Path(work.result_path).write_text(json.dumps(asdict(done)))


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Cell:
    side: str
    processes: int
    requests: int  # answered by the sandbox, 429s included
    throttled: int
    pages: int
    orders: int
    duration_s: float
    peak_level: float  # the sandbox bucket's highest level, replayed from its log

    @property
    def per_second(self) -> float:
        return self.requests / self.duration_s

    @property
    def allowance_per_second(self) -> float:
        return (BURST + LEAK_PER_S * self.duration_s) / self.duration_s

    @property
    def ratio(self) -> float:
        return self.per_second / self.allowance_per_second


def epoch(stamp: str) -> float:
    """The sandbox log's ``2026-01-02T03:04:05.123456789Z`` as epoch seconds."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + int(fraction.ljust(9, "0")) / 1e9


def peak_level(arrivals: list[float]) -> float:
    """The standard-plan bucket's highest level over these arrival times (each request adds 1,
    the bucket leaks 2 per second), as the sandbox counted it."""
    level, last, peak = 0.0, None, 0.0
    for at in sorted(arrivals):
        if last is not None:
            level = max(0.0, level - (at - last) * LEAK_PER_S)
        last = at
        level = min(float(BURST), level + 1)
        peak = max(peak, level)
    return peak


def all_orders(control: httpx.Client, shop: dict[str, Any]) -> list[tuple[str, int]]:
    """Every order's (created_at, id), read before the measurements (the bucket is emptied
    afterwards)."""
    url = f"{shop['api_base_url']}/admin/api/{DEFAULT_API_VERSION}/orders.json"
    headers = {"X-Shopify-Access-Token": shop["access_token"]}
    params: dict[str, Any] = {"status": "any", "limit": 250, "fields": "id,created_at"}
    found: list[tuple[str, int]] = []
    while True:
        response = control.get(url, params=params, headers=headers)
        if response.status_code == 429:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        response.raise_for_status()
        found.extend((order["created_at"], order["id"]) for order in response.json()["orders"])
        cursor = page_info_of(response, "next")
        if cursor is None:
            return found
        params = {"limit": 250, "fields": "id,created_at", "page_info": cursor}


def windows(orders: list[tuple[str, int]], processes: int) -> list[tuple[str, str]]:
    """``processes`` created_at windows holding equal shares of the orders (a boundary moves
    past orders created in the same second, so no order is in two windows)."""
    ordered = sorted(orders, key=lambda order: (datetime.fromisoformat(order[0]), order[1]))
    stamps = [datetime.fromisoformat(created) for created, _ in ordered]
    cuts = [0]
    for part in range(1, processes):
        cut = max(cuts[-1], round(len(ordered) * part / processes))
        while 0 < cut < len(ordered) and stamps[cut] == stamps[cut - 1]:
            cut += 1
        cuts.append(cut)
    cuts.append(len(ordered))
    return [(ordered[a][0], ordered[b - 1][0]) for a, b in itertools.pairwise(cuts)]


def run_cell(
    arguments: argparse.Namespace,
    side: str,
    processes: int,
    shop: dict[str, Any],
    control: httpx.Client,
    created: list[tuple[str, int]],
    work_dir: Path,
    key_prefix: str,
) -> Cell:
    admin = f"/_sandbox/shops/{SHOP}"
    control.post(f"{admin}/limits/reset").raise_for_status()
    control.delete(f"{admin}/requests").raise_for_status()
    parts = windows(created, processes)
    children: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        for index, (low, high) in enumerate(parts):
            result = work_dir / f"{side}-{processes}-{index}.json"
            work = Slice(
                side=side,
                index=index,
                processes=processes,
                api_base_url=shop["api_base_url"],
                access_token=shop["access_token"],
                created_at_min=low,
                created_at_max=high,
                page_size=arguments.page_size,
                redis_url=arguments.redis_url,
                key_prefix=key_prefix,
                result_path=str(result),
            )
            process = subprocess.Popen(
                [sys.executable, __file__, "--child", json.dumps(asdict(work))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            children.append((process, result))
        for process, _ in children:
            assert process.stdout is not None
            line = process.stdout.readline()  # "" if it died on the way
            if line != "ready\n":
                raise SystemExit(f"a backfill process did not start: {line!r}")
        for process, _ in children:  # one cue for all
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.close()
        for process, _ in children:
            code = process.wait(CELL_TIMEOUT_S)
            if code != 0:
                raise SystemExit(f"a backfill process failed (exit code {code})")
    finally:
        for process, _ in children:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
    done = [Done(**json.loads(path.read_text())) for _, path in children]
    read = [order_id for part in done for order_id in part.order_ids]
    if len(read) != len(set(read)) or set(read) != {order_id for _, order_id in created}:
        raise SystemExit(f"{side} x {processes}: the orders read are not every order once")
    log = control.get(f"{admin}/requests", params={"recent": 100_000}).json()
    pages = sum(part.pages for part in done)
    if log["requests"] != pages + log["throttled"]:
        raise SystemExit(
            f"{side} x {processes}: the sandbox answered {log['requests']} requests, the "
            f"processes read {pages} pages and were refused {log['throttled']} times"
        )
    return Cell(
        side=side,
        processes=processes,
        requests=log["requests"],
        throttled=log["throttled"],
        pages=pages,
        orders=len(read),
        duration_s=max(part.finished for part in done) - min(part.started for part in done),
        peak_level=peak_level([epoch(entry["at"]) for entry in log["recent"]]),
    )


SIDES = {"rappit": "Rappit (shared bucket)", "fixed": "fixed 2 requests/s"}
COLUMNS = (
    "side",
    "processes",
    "requests",
    "429s",
    "duration s",
    "requests/s",
    "allowance/s",
    "rate ÷ allowance",
    "peak level",
)


def _cells(cell: Cell) -> list[str]:
    return [
        SIDES[cell.side],
        str(cell.processes),
        f"{cell.requests:,}",
        str(cell.throttled),
        f"{cell.duration_s:.1f}",
        f"{cell.per_second:.2f}",
        f"{cell.allowance_per_second:.2f}",
        f"{cell.ratio:.3f}",
        f"{cell.peak_level:.1f}",
    ]


def _command() -> str:
    arguments = [redacted(argument) if "://" in argument else argument for argument in sys.argv[1:]]
    return " ".join([".venv/bin/python bench/sync.py", *arguments])


def _redis_description(url: str) -> str:
    client = redis.Redis(**connection_kwargs(url), decode_responses=True)
    try:
        server = client.info("server").get("redis_version", "unknown")
    finally:
        client.close()
    return f"{server} (same machine, reached over TCP)"


def _met(cells: list[Cell]) -> bool:
    rappit = [cell for cell in cells if cell.side == "rappit"]
    return all(cell.ratio >= TARGET for cell in rappit) and not any(c.throttled for c in cells)


def render_markdown(
    cells: list[Cell], machine: list[tuple[str, str]], arguments: argparse.Namespace
) -> str:
    by = {(cell.side, cell.processes): cell for cell in cells}
    comparisons = [
        f"- {processes} process{'es' if processes > 1 else ''}: Rappit read the "
        f"{by['rappit', processes].orders:,} orders in {by['rappit', processes].duration_s:.1f} s, "
        f"the fixed 2/s client in {by['fixed', processes].duration_s:.1f} s (Rappit's rate "
        f"{by['rappit', processes].per_second / by['fixed', processes].per_second:.2f} times "
        "the baseline's)."
        for processes in sorted({cell.processes for cell in cells})
    ]
    rappit = [cell for cell in cells if cell.side == "rappit"]
    lowest = min(cell.ratio for cell in rappit)
    requests = rappit[0].requests
    ideal = max(0.0, requests - (BURST - MARGIN)) / LEAK_PER_S
    best = requests / (BURST + LEAK_PER_S * ideal)
    refused = sum(cell.throttled for cell in cells)
    lines = [
        START_MARK,
        "## Shopify REST backfill under the rate limit (`bench/sync.py`)",
        "",
        "A backfill reads every order of a sandbox shop on Shopify's standard plan (a bucket "
        f"of {BURST} requests leaking {LEAK_PER_S:g} per second; the sandbox answers 429 with "
        "`Retry-After` when a request does not fit) through `GET orders.json?status=any`, "
        f"{arguments.pages} pages of {arguments.page_size} orders. With several processes "
        "each reads its own `created_at` window holding an equal share, so every cell makes "
        "the same requests; the processes are separate OS processes started on one cue. "
        "*Rappit*: `ShopifyClient.pages` with a `SharedLeakyBucket` on Redis as the sync "
        "pullers build it (default settings: margin 2, the standard plan's 40 and 2/s until "
        "the shop's `X-Shopify-Shop-Api-Call-Limit` says otherwise), one Redis connection per "
        "process, one bucket for the shop. Baseline: plain `httpx` on a fixed schedule of "
        f"{LEAK_PER_S:g} requests per second in all (one process every 0.5 s; "
        f"{arguments.processes} processes every {arguments.processes / LEAK_PER_S:g} s each, "
        "staggered), which never overflows the bucket and never uses its burst. Each cell "
        "starts from an empty bucket.",
        "",
        "*duration*: from the first request to the last answer. *allowance/s*: what the "
        "bucket admits in that time starting empty, `(burst + leak * duration) / duration` = "
        f"`({BURST} + {LEAK_PER_S:g} * duration) / duration` requests per second. *rate ÷ "
        "allowance* = `requests / (40 + 2 * duration)`: 1.0 means every request the bucket "
        "could take was sent. *requests* and *429s* are the sandbox's request log; the orders "
        "read were checked to be every order of the shop exactly once. *peak level*: the "
        "highest level of the shop's bucket, replayed from the sandbox's arrival times (40 is "
        "full).",
        "",
        f"Command: `{_command()}`.",
        "",
        *[f"- {label}: {value}" for label, value in machine],
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
        *["| " + " | ".join(_cells(cell)) + " |" for cell in cells],
        "",
        *comparisons,
        "",
        f"Target: Rappit's rate ÷ allowance at least {TARGET} with no 429: "
        f"{'met' if _met(cells) else 'not met'} (lowest {lowest:.3f}, {refused} 429s in all).",
        "",
        f"Where the rest goes: the limiter keeps {MARGIN:g} of the {BURST} slots free (its "
        "margin, for requests it cannot see), so it sends at most "
        f"{BURST - MARGIN:g} at once; after that the shop's leak sets the pace for all "
        f"processes together, one request per {1 / LEAK_PER_S:g} s. With that margin the best "
        f"a backfill of {requests} requests can do is {ideal:.1f} s "
        f"(`(requests - {BURST - MARGIN:g}) / {LEAK_PER_S:g}`), a ratio of {best:.3f}; the "
        "measured durations are "
        + " and ".join(
            f"{cell.duration_s - ideal:.1f} s longer ({cell.processes} "
            f"process{'es' if cell.processes > 1 else ''})"
            for cell in rappit
        )
        + ": each wait ends a little after the slot frees (the limiter adds a few "
        "milliseconds of jitter so that waiting processes do not all wake at once, and the "
        "answer of each request is a loopback round trip).",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def require_loopback(url: str) -> None:
    if url.startswith("unix://"):
        return
    host = connection_kwargs(url).get("host") or "localhost"
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"--redis-url must be on this machine (a loopback address), not {host}")


def main(arguments: argparse.Namespace) -> None:
    require_loopback(arguments.redis_url)
    load_before = os.getloadavg()
    orders = arguments.pages * arguments.page_size
    run_prefix = f"rappit-bench-sync-{os.getpid()}"
    console.print(f"Sandbox: {SHOP} on the standard plan with {orders:,} orders …")
    sandbox = SandboxProcess(
        "--shop", SHOP, "--plan", "standard", "--orders", str(orders), "--products", "20"
    )
    cells: list[Cell] = []
    try:
        sandbox.start()
        shop = sandbox.shops[0]
        with (
            httpx.Client(base_url=sandbox.base_url, timeout=30, trust_env=False) as control,
            tempfile.TemporaryDirectory(prefix="rappit-bench-sync-") as directory,
        ):
            created = all_orders(control, shop)
            if len({order_id for _, order_id in created}) != orders:
                raise SystemExit(f"the sandbox shop has {len(created)} orders, not {orders}")
            for processes in sorted({1, arguments.processes}):
                for side in ("rappit", "fixed"):
                    console.print(f"{SIDES[side]}, {processes} process(es) …")
                    cell = run_cell(
                        arguments,
                        side,
                        processes,
                        shop,
                        control,
                        created,
                        Path(directory),
                        f"{run_prefix}-{side}-{processes}",
                    )
                    cells.append(cell)
                    console.print(
                        f"  {cell.requests} requests in {cell.duration_s:.1f} s, "
                        f"{cell.throttled} 429s, rate ÷ allowance {cell.ratio:.3f}, peak level "
                        f"{cell.peak_level:.1f}"
                    )
    finally:
        sandbox.stop()
        deleted = benchkit.delete_keys(arguments.redis_url, f"{run_prefix}-*")
        console.print(f"Sandbox stopped; deleted {deleted} Redis key(s) under {run_prefix}-*")

    table = Table(title=f"REST backfill, {arguments.pages} pages of {arguments.page_size}")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "side" else "right")
    for cell in cells:
        table.add_row(*_cells(cell))
    Console(width=max(console.width, 130)).print(table)
    console.print(f"Target (Rappit ≥ {TARGET}, no 429): {'met' if _met(cells) else 'NOT met'}")

    machine = benchkit.machine(
        ("Redis", _redis_description(arguments.redis_url)),
        (
            "software",
            f"Python {platform.python_version()}, httpx {package_version('httpx')}, "
            f"uvicorn {package_version('uvicorn')} (the sandbox), Rappit {__version__}",
        ),
        load_before=load_before,
        load_after=True,
    )
    if arguments.docs:
        benchkit.write_section(
            render_markdown(cells, machine, arguments), DOCS, START_MARK, END_MARK
        )
        console.print(f"Written to {DOCS}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--pages", type=int, default=100, help="pages in the whole backfill")
    parser.add_argument("--page-size", type=int, default=25, help="orders per page")
    parser.add_argument(
        "--processes", type=int, default=4, help="processes of the shared cells (and 1)"
    )
    parser.add_argument(
        "--no-docs", dest="docs", action="store_false", help="do not update docs/benchmarks.md"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one backfill process
    arguments = parser.parse_args()
    if arguments.pages % arguments.processes:
        parser.error("--pages must be a multiple of --processes")
    if not 1 <= arguments.page_size <= 250:
        parser.error("--page-size must be 1..250")
    return arguments


if __name__ == "__main__":
    parsed = parse_arguments()
    if parsed.child:
        run_child(Slice(**json.loads(parsed.child)))
    else:
        main(parsed)
