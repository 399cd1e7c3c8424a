"""Typed settings read from the environment (prefix ``RAPPIT_``).

The embedded default needs no configuration at all: SQLite and the secret key live in
``RAPPIT_DATA_DIR``. Production mode refuses to start without an explicit secret key, because a
generated one would make stored channel credentials unreadable on the next host.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rappit.kit.errors import ConfigurationError

# Values that must never be accepted as a real secret key.
_DEFAULT_SECRET_KEYS = frozenset({"", "changeme", "change-me", "secret", "dev"})
_SECRET_KEY_FILE = "secret_key"
# Webhooks are retried for 4 hours and may be delayed up to a day: a day's window catches both.
DEFAULT_RECONCILE_WINDOW_HOURS = 24


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAPPIT_", env_file=None, extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path(".rappit")
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    # The public URL Shopify reaches this deployment at, e.g. https://rappit.example.com:
    # webhook subscriptions point at {it}/webhooks/shopify/{topic}. Unset: none are registered.
    webhook_base_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    database_pool_size: int = Field(default=20, ge=1)
    # Pagination bounds for list endpoints.
    page_size_default: int = Field(default=50, ge=1)
    page_size_max: int = Field(default=200, ge=1)

    # Largest webhook body accepted; larger ones get 413 before being read in full.
    webhook_max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # How long an API process keeps a shop's channel (organisation, webhook secrets) before
    # reading it again; a delivery signed with a newer secret re-reads at once.
    webhook_route_ttl_s: float = Field(default=10.0, ge=0)

    # Queues (BullMQ on Redis).
    queue_prefix: str = Field(default="bull", min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    job_attempts: int = Field(default=5, ge=1, le=25)
    job_backoff_ms: int = Field(default=1000, ge=0)
    # How long a job may go without its worker renewing the lock before another worker takes it
    # over (a worker killed with SIGKILL renews nothing).
    job_lock_duration_ms: int = Field(default=30_000, ge=1000)
    job_stalled_interval_ms: int = Field(default=30_000, ge=500)
    # Seconds a worker blocks on an empty queue; lower means quicker pick-up after a pause.
    worker_drain_delay_s: int = Field(default=1, ge=1)
    # Per-queue concurrency of one worker process, e.g. {"webhook-processing": 16}.
    worker_concurrency: dict[str, int] = Field(default_factory=dict)
    worker_default_concurrency: int = Field(default=4, ge=1, le=256)
    worker_shutdown_timeout_s: float = Field(default=30.0, gt=0)
    # Wait before a worker tries Redis again after losing it.
    worker_reconnect_delay_ms: int = Field(default=2000, ge=50)
    # Rows standing for pending work with no job after this many seconds are enqueued again.
    sweep_interval_s: int = Field(default=30, ge=1)
    sweep_after_s: int = Field(default=60, ge=1)
    # Reconciliation: every this many seconds each active channel re-polls its recent orders
    # and stock, healing what webhooks missed (0 turns the schedule off).
    reconcile_interval_s: int = Field(default=3600, ge=0)
    # With a webhook base URL: every this many seconds each active Shopify channel's
    # subscriptions are registered again if anything is missing (0 turns the check off).
    webhook_check_interval_s: int = Field(default=3600, ge=0)
    # How far back a reconciliation re-reads orders (by the channel's updated_at).
    reconcile_window_hours: int = Field(default=DEFAULT_RECONCILE_WINDOW_HOURS, ge=1, le=24 * 60)
    # Inventory push: stock changes within this many milliseconds share one push job per
    # channel, which runs when the window ends.
    inventory_push_debounce_ms: int = Field(default=1000, ge=1)
    # Levels per inventorySetQuantities call (Shopify takes at most 250).
    inventory_push_batch_size: int = Field(default=250, ge=1, le=250)
    # A push job's claim on its marks lapses after this long without progress (its worker
    # died); another job then takes them.
    inventory_push_claim_timeout_s: int = Field(default=120, ge=5)

    @field_validator("webhook_base_url")
    @classmethod
    def _check_webhook_base_url(cls, value: str | None) -> str | None:
        return normalize_webhook_base_url(value)

    @property
    def is_production(self) -> bool:
        return self.env == Environment.PRODUCTION

    def sqlalchemy_database_url(self) -> str:
        """The async SQLAlchemy URL; unset means the embedded SQLite file in the data dir."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'rappit.db').resolve()}"
        return normalize_database_url(self.database_url)

    def resolved_secret_key(self) -> str:
        """The secret key, generating and persisting one for the embedded default.

        Production mode refuses a missing or well-known key instead of inventing one.
        """
        configured = self.secret_key.get_secret_value() if self.secret_key else ""
        if configured and configured.lower() not in _DEFAULT_SECRET_KEYS:
            return configured
        if self.is_production:
            raise ConfigurationError(
                "RAPPIT_SECRET_KEY must be set to a random value in production "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return _load_or_create_secret_key(self.data_dir)


def normalize_database_url(url: str) -> str:
    """Accept the usual spellings of PostgreSQL/SQLite URLs and pick the async drivers."""
    for prefix in (
        "postgres://",
        "postgresql://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def normalize_webhook_base_url(value: str | None) -> str | None:
    """An http(s) URL with a host and no query, fragment or credentials, spelt one way (lower
    case host, no trailing slash) so subscriptions are recognised as this deployment's by
    prefix. Empty means unset."""
    if value is None or not value.strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL, e.g. https://rappit.example.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry a query, a fragment or credentials")
    _ = parts.port  # a port that is no number raises ValueError here
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path}".rstrip("/")


def _load_or_create_secret_key(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / _SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
