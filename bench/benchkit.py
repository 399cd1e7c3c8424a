"""What every benchmark script shares: describing the machine, reading process CPU time, and
rewriting its own section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

import redis

from rappit.queues.connection import connection_kwargs

DOCS_HEADER = (
    "# Benchmarks\n\n"
    "Each benchmark measures Rappit against a baseline in the same run on the same machine and "
    "records the ratio; absolute numbers move with the machine, the ratios much less. Each "
    "section is rewritten by the script named in it.\n\n"
)


def memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(
    *described: tuple[str, str],
    load_before: tuple[float, float, float],
    load_after: bool = False,
) -> list[tuple[str, str]]:
    """The lines that describe the run in a section: date, CPUs and memory, then the script's
    own (servers, software), then the load average before (and, with ``load_after``, now)."""
    lines = [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d")),
        ("CPUs (nproc)", f"{len(os.sched_getaffinity(0))}, {cpu_model()}"),
        ("memory", memory()),
        *described,
        ("load average before the run", "{:.2f} {:.2f} {:.2f}".format(*load_before)),
    ]
    if load_after:
        lines.append(
            ("load average after the run", "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        )
    return lines


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc); gone ones count 0."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def write_section(section: str, path: Path, start_mark: str, end_mark: str) -> None:
    """Rewrite only the text between this script's marks (read just before writing: other
    scripts own the other sections of the same file)."""
    text = path.read_text() if path.exists() else DOCS_HEADER
    pattern = re.compile(re.escape(start_mark) + r".*?" + re.escape(end_mark) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def delete_keys(url: str, pattern: str) -> int:
    """Remove a run's Redis keys (UNLINK in batches of 1,000); returns how many went."""
    client = redis.Redis(**connection_kwargs(url))
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += client.unlink(*batch)
    finally:
        client.close()
    return deleted
