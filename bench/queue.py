"""No-op jobs per second through Rappit's queue layer, against bare BullMQ in the same run.

    .venv/bin/python bench/queue.py [--redis-url URL] [--jobs N] [--processes 1 2]
                                    [--concurrency 32] [--rounds 3] [--log-level INFO [WARNING]]

For each number of worker processes (separate OS processes: this script started again with
``--worker``, each with the same concurrency) and two modes:

- *add + process*: the workers wait on an empty queue; the clock runs from the first add of the
  N jobs to the last completion, so the producer's cost is part of the result.
- *backlog*: the N jobs already wait in a paused queue; the clock runs from the resume to the
  last completion (the workers alone).

Rappit: ``QueueClient.add_many`` with ``JobRequest``s carrying deterministic ids (with them
the layer's job options: attempts, exponential backoff, completed kept 24 h, failed 7 days),
consumed by ``QueueWorker``s running a registered async no-op handler, logging configured as
the CLI configures it (``--log-level``, default INFO as in production; lines go to a file).
bare: ``bullmq.Queue.addBulk`` with no options and ``bullmq.Worker`` with a no-op processor,
the same concurrency and the same Redis connection settings (``socket_timeout=None``).
Completion is the queue's completed count reaching N, polled every 20 ms. Each cell runs
``--rounds`` times (sides alternating which goes first); the medians are reported.

Every cell uses its own key prefix (``rappit-bench-queue-<pid>-...``), deleted at the end. The
results table is printed and written into docs/benchmarks.md between this script's markers.
Numbers are only comparable within one run: the ratio is the result.
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
import os
import platform
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

import benchkit
import redis
from bullmq import Job, Queue, Worker
from rich.console import Console
from rich.table import Table

from rappit import __version__
from rappit.kit.logging import configure_logging
from rappit.queues.client import QueueClient
from rappit.queues.connection import connection_kwargs, redacted
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName
from rappit.queues.worker import (
    HandlerRegistry,
    JobContext,
    QueueWorker,
    WorkerOptions,
)

QUEUE = QueueName.WEBHOOK_PROCESSING
JOB_NAME = "bench.noop"
MODES = ("add + process", "backlog")
SIDES = ("rappit", "bare")
POLL_S = 0.02
# After a worker process is up: time for its BullMQ worker to open its connections and block
# on the queue before the clock starts.
SETTLE_S = 1.0
READY_TIMEOUT_S = 60.0
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START_MARK = "<!-- bench/queue.py: start -->"
END_MARK = "<!-- bench/queue.py: end -->"

console = Console()


@dataclass(frozen=True)
class Measurement:
    per_second: float
    # CPU time (user + system) of the worker processes per job while the clock ran: unlike the
    # rate, it hardly moves when other work on the machine competes for the CPUs.
    cpu_us_per_job: float


@dataclass(frozen=True)
class Result:
    mode: str
    processes: int
    log_level: str
    # One Measurement per round.
    rappit_rounds: list[Measurement]
    bare_rounds: list[Measurement]

    @property
    def rappit(self) -> float:
        return statistics.median(m.per_second for m in self.rappit_rounds)

    @property
    def bare(self) -> float:
        return statistics.median(m.per_second for m in self.bare_rounds)

    @property
    def rappit_cpu_us(self) -> float:
        return statistics.median(m.cpu_us_per_job for m in self.rappit_rounds)

    @property
    def bare_cpu_us(self) -> float:
        return statistics.median(m.cpu_us_per_job for m in self.bare_rounds)

    @property
    def ratio(self) -> float:
        return self.rappit / self.bare

    @property
    def round_ratios(self) -> list[float]:
        return [
            r.per_second / b.per_second
            for r, b in zip(self.rappit_rounds, self.bare_rounds, strict=True)
        ]


# --- worker processes --------------------------------------------------------------------------


async def rappit_noop(_: JobContext) -> None:
    return None


async def bare_noop(_job: Job, _token: str) -> None:
    return None


async def worker_main(arguments: argparse.Namespace) -> None:
    """One worker process: take jobs until SIGTERM, then close the worker."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if arguments.worker == "rappit":
        configure_logging(arguments.log_level[0])
        client = QueueClient(arguments.redis_url, prefix=arguments.prefix)
        registry = HandlerRegistry()
        registry.register(QUEUE, JOB_NAME, rappit_noop)
        worker = QueueWorker(
            QUEUE,
            registry.for_queue(QUEUE),
            client,
            WorkerOptions(concurrency=arguments.concurrency),
        )
        worker.start()
        await client.ping()
        await asyncio.sleep(SETTLE_S)
        print("ready", flush=True)
        await stop.wait()
        await worker.close(timeout_s=10)
        await client.close()
    else:
        bare = Worker(
            QUEUE.value,
            bare_noop,
            {
                "connection": connection_kwargs(arguments.redis_url),
                "prefix": arguments.prefix,
                "concurrency": arguments.concurrency,
            },
        )
        await bare.client.ping()
        await asyncio.sleep(SETTLE_S)
        print("ready", flush=True)
        await stop.wait()
        await bare.close()


def _open_log(path: Path) -> BinaryIO:
    return path.open("wb")  # handed to the child process as its stderr


async def start_workers(
    arguments: argparse.Namespace,
    side: str,
    prefix: str,
    processes: int,
    log_level: str,
    logs: Path,
) -> list[asyncio.subprocess.Process]:
    started = []
    for index in range(processes):
        log = _open_log(logs / f"{prefix}-{index}.log")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--worker",
                side,
                "--prefix",
                prefix,
                "--redis-url",
                arguments.redis_url,
                "--concurrency",
                str(arguments.concurrency),
                "--log-level",
                log_level,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        finally:
            log.close()
        started.append(process)
    for index, process in enumerate(started):
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)
        if line.strip() != b"ready":
            tail = (logs / f"{prefix}-{index}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{side} worker process did not start:\n{tail}")
    return started


async def stop_workers(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


# --- producers ---------------------------------------------------------------------------------


class RappitSide:
    def __init__(self, url: str, prefix: str) -> None:
        self.client = QueueClient(url, prefix=prefix)
        self.queue = self.client.queue(QUEUE)

    async def add(self, jobs: int) -> None:
        await self.client.add_many(
            [JobRequest(QUEUE, JOB_NAME, f"noop-{index}", {"i": index}) for index in range(jobs)]
        )

    async def close(self) -> None:
        await self.client.close()


class BareSide:
    def __init__(self, url: str, prefix: str) -> None:
        self.queue = Queue(QUEUE.value, {"connection": connection_kwargs(url), "prefix": prefix})

    async def add(self, jobs: int) -> None:
        await self.queue.addBulk(
            [{"name": JOB_NAME, "data": {"i": index}} for index in range(jobs)]
        )

    async def close(self) -> None:
        await self.queue.close()


async def wait_completed(queue: Queue, jobs: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        counts: dict[str, Any] = await queue.getJobCounts("completed", "failed")
        if int(counts.get("failed", 0)):
            raise RuntimeError(f"{counts['failed']} job(s) failed")
        if int(counts.get("completed", 0)) >= jobs:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {counts.get('completed', 0)} of {jobs} jobs completed")
        await asyncio.sleep(POLL_S)


async def run_cell(
    arguments: argparse.Namespace,
    side: str,
    mode: str,
    processes: int,
    log_level: str,
    prefix: str,
    logs: Path,
) -> Measurement:
    """Jobs per second and worker CPU per job for one side, mode and number of worker
    processes."""
    producer: RappitSide | BareSide = (
        RappitSide(arguments.redis_url, prefix)
        if side == "rappit"
        else BareSide(arguments.redis_url, prefix)
    )
    workers: list[asyncio.subprocess.Process] = []
    try:
        if mode == "backlog":
            await producer.queue.pause()
            await producer.add(arguments.jobs)
        workers = await start_workers(arguments, side, prefix, processes, log_level, logs)
        pids = [worker.pid for worker in workers]
        cpu_started = benchkit.cpu_seconds(pids)
        started = time.perf_counter()
        if mode == "backlog":
            await producer.queue.resume()
        else:
            await producer.add(arguments.jobs)
        await wait_completed(producer.queue, arguments.jobs, arguments.timeout)
        elapsed = time.perf_counter() - started
        cpu = benchkit.cpu_seconds(pids) - cpu_started
    finally:
        await stop_workers(workers)
        await producer.close()
    return Measurement(arguments.jobs / elapsed, cpu / arguments.jobs * 1e6)


# --- environment and report --------------------------------------------------------------------


def _redis_description(url: str) -> str:
    client = redis.Redis(**connection_kwargs(url), decode_responses=True)
    try:
        version = client.info("server").get("redis_version", "unknown")
        appendonly = client.config_get("appendonly").get("appendonly", "?")
    finally:
        client.close()
    return f"{version} (appendonly {appendonly}, same machine, reached over TCP)"


def _command() -> str:
    arguments = [redacted(argument) if "://" in argument else argument for argument in sys.argv[1:]]
    return " ".join([".venv/bin/python bench/queue.py", *arguments])


def _package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


COLUMNS = (
    "mode",
    "processes",
    "Rappit logs",
    "Rappit jobs/s",
    "bare jobs/s",
    "Rappit/bare",
    "by round",
    "worker CPU µs/job Rappit / bare",
)
TARGET = 0.8


def _cells(result: Result) -> list[str]:
    return [
        result.mode,
        str(result.processes),
        result.log_level,
        f"{result.rappit:,.0f}",
        f"{result.bare:,.0f}",
        f"{result.ratio:.2f}",
        " ".join(f"{ratio:.2f}" for ratio in result.round_ratios),
        f"{result.rappit_cpu_us:,.0f} / {result.bare_cpu_us:,.0f}",
    ]


def render_markdown(
    results: list[Result],
    machine: list[tuple[str, str]],
    arguments: argparse.Namespace,
) -> str:
    spread = [ratio for result in results for ratio in result.round_ratios]
    verdicts = []
    for level in arguments.log_level:
        ratios = [result.ratio for result in results if result.log_level == level]
        cpu = [
            result.rappit_cpu_us / result.bare_cpu_us
            for result in results
            if result.log_level == level
        ]
        verdict = "met" if min(ratios) >= TARGET else "not met"
        verdicts.append(
            f"with Rappit logging at {level}, {verdict} (lowest ratio {min(ratios):.2f}; worker "
            f"CPU per job {min(cpu):.2f} to {max(cpu):.2f} times bare's)"
        )
    lines = [
        START_MARK,
        "## Queue throughput (`bench/queue.py`)",
        "",
        "No-op jobs per second through Rappit's queue layer against bare BullMQ (the Python "
        "package Rappit runs on), same Redis, same run. Rappit: `QueueClient.add_many` with "
        "`JobRequest`s carrying deterministic ids (and so the layer's job options: attempts "
        "with exponential backoff, completed jobs kept 24 h, failed 7 days), consumed by "
        "`QueueWorker`s running a registered async no-op handler, with logging configured as "
        "the CLI does at the given level (one *job started* and one *job done* line per job at "
        "INFO, written to a file). bare: `Queue.addBulk` without options and `bullmq.Worker` "
        "with a no-op processor, same concurrency and the same connection settings "
        "(`socket_timeout=None`). Worker processes are separate OS processes, each with the "
        f"same concurrency ({arguments.concurrency}). *add + process*: the workers wait on an "
        "empty queue and the clock runs from the first add to the last completion (producer "
        "included); *backlog*: the jobs already wait in a paused queue and the clock runs from "
        "the resume to the last completion (workers only). Completion is the queue's completed "
        "count reaching N, polled every 20 ms. Each cell runs "
        f"{arguments.rounds} round(s), the sides alternating which goes first; *Rappit jobs/s* "
        "and *bare jobs/s* are the medians, *Rappit/bare* their ratio and *by round* the ratio "
        "within each round (the spread shows the noise). *worker CPU µs/job* is the user + "
        "system CPU time of the worker processes while the clock ran, per job (median): the "
        "cost of a job to the worker whatever else waits for the CPUs, though sharing them "
        "still moves it (caches, clock speed).",
        "",
        f"Command: `{_command()}` ({arguments.jobs:,} jobs per cell). *Rappit logs*: the "
        "log level of Rappit's worker processes (INFO is the production default).",
        "",
        *[f"- {label}: {value}" for label, value in machine],
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
        *["| " + " | ".join(_cells(result)) + " |" for result in results],
        "",
        f"Target: Rappit at least {TARGET} times bare's jobs per second in every cell: "
        + "; ".join(verdicts)
        + f". Single rounds range from {min(spread):.2f} to {max(spread):.2f} times bare.",
        "",
        "What the Rappit side does on top of bare BullMQ per job: on the producer, the job "
        "options of every `JobRequest` (deterministic `jobId`, attempts, backoff, age-based "
        "retention, which BullMQ stores with the job and applies when it completes); on the "
        "worker, a `JobContext` built from the job, the handler looked up by job name, and "
        "two log lines at INFO. Both sides share the machine's CPUs with Redis and with each "
        "other's worker processes, so the numbers move from round to round; read the ratio "
        "with the *by round* spread.",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


# --- main --------------------------------------------------------------------------------------


async def main(arguments: argparse.Namespace) -> None:
    load_before = os.getloadavg()  # other work on the machine skews the numbers: say so
    redis_description = _redis_description(arguments.redis_url)
    run_prefix = f"rappit-bench-queue-{os.getpid()}"
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rappit-bench-queue-") as directory:
            logs = Path(directory)
            cells = [
                (mode, processes, level)
                for mode in MODES
                for processes in arguments.processes
                for level in arguments.log_level
            ]
            for cell, (mode, processes, level) in enumerate(cells):
                rates: dict[str, list[Measurement]] = {side: [] for side in SIDES}
                for round_ in range(arguments.rounds):
                    # Alternate which side goes first, so drift on the machine (another
                    # process waking up, Redis growing its memory) favours neither.
                    order = SIDES if round_ % 2 == 0 else SIDES[::-1]
                    for side in order:
                        prefix = f"{run_prefix}-{side}-{cell}-{round_}"
                        measured = await run_cell(
                            arguments, side, mode, processes, level, prefix, logs
                        )
                        rates[side].append(measured)
                        console.print(
                            f"{mode}, {processes} process(es), Rappit logs at {level}, "
                            f"round {round_ + 1}, {side}: {measured.per_second:,.0f} jobs/s, "
                            f"worker CPU {measured.cpu_us_per_job:,.0f} µs/job"
                        )
                        benchkit.delete_keys(arguments.redis_url, f"{prefix}:*")
                results.append(Result(mode, processes, level, rates["rappit"], rates["bare"]))
    finally:
        deleted = benchkit.delete_keys(arguments.redis_url, f"{run_prefix}-*")
        console.print(f"Deleted {deleted} Redis key(s) under {run_prefix}-*")

    table = Table(title=f"No-op jobs per second ({arguments.jobs:,} jobs per cell)")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "mode" else "right")
    for result in results:
        table.add_row(*_cells(result))
    Console(width=max(console.width, 130)).print(table)

    machine = benchkit.machine(
        ("Redis", redis_description),
        (
            "Python",
            f"{platform.python_version()}, bullmq {_package_version('bullmq')}, redis-py "
            f"{_package_version('redis')}, Rappit {__version__}",
        ),
        load_before=load_before,
        load_after=True,
    )
    if arguments.docs:
        benchkit.write_section(
            render_markdown(results, machine, arguments), DOCS, START_MARK, END_MARK
        )
        console.print(f"Written to {DOCS}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per cell")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2], help="worker process counts"
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="concurrency of each worker process"
    )
    parser.add_argument(
        "--log-level",
        nargs="+",
        default=["INFO"],
        type=str.upper,
        help="log level(s) of Rappit's worker processes; each is a cell of its own",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per cell; the median is reported"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a cell after")
    parser.add_argument(
        "--no-docs", dest="docs", action="store_false", help="do not update docs/benchmarks.md"
    )
    # Internal: run as one worker process of a cell.
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    parsed = parse_arguments()
    asyncio.run(worker_main(parsed) if parsed.worker else main(parsed))
