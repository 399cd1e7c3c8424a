import stat
from pathlib import Path

import pytest

from rappit.config import Environment, Settings
from rappit.kit.errors import ConfigurationError


def _settings(tmp_path: Path, **values: object) -> Settings:
    # Explicit values win over the environment, so a developer's RAPPIT_* variables do not leak
    # into these cases.
    defaults: dict[str, object] = {"data_dir": tmp_path, "database_url": None, "secret_key": None}
    return Settings(**(defaults | values))


def test_unset_database_url_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    url = _settings(tmp_path).sqlalchemy_database_url()
    assert url == f"sqlite+aiosqlite:///{(tmp_path / 'rappit.db').resolve()}"


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("postgres://u:p@db:5432/rappit", "postgresql+asyncpg://u:p@db:5432/rappit"),
        ("postgresql://u:p@db:5432/rappit", "postgresql+asyncpg://u:p@db:5432/rappit"),
        ("postgresql+psycopg://u@db/rappit", "postgresql+asyncpg://u@db/rappit"),
        ("postgresql+psycopg2://u@db/rappit", "postgresql+asyncpg://u@db/rappit"),
        ("postgresql+asyncpg://u@db/rappit", "postgresql+asyncpg://u@db/rappit"),
        ("sqlite:////var/lib/rappit.db", "sqlite+aiosqlite:////var/lib/rappit.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_spellings_pick_the_async_driver(
    tmp_path: Path, configured: str, expected: str
) -> None:
    assert _settings(tmp_path, database_url=configured).sqlalchemy_database_url() == expected


def test_secret_key_is_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = _settings(tmp_path, data_dir=data_dir).resolved_secret_key()
    again = _settings(tmp_path, data_dir=data_dir).resolved_secret_key()

    assert first == again
    assert len(first) >= 48
    key_file = data_dir / "secret_key"
    assert key_file.read_text() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_configured_secret_key_is_used_as_is(tmp_path: Path) -> None:
    settings = _settings(tmp_path, secret_key="a-real-random-value-0123456789")
    assert settings.resolved_secret_key() == "a-real-random-value-0123456789"
    assert not (tmp_path / "secret_key").exists()


def test_well_known_secret_key_is_replaced_in_development(tmp_path: Path) -> None:
    key = _settings(tmp_path, secret_key="changeme").resolved_secret_key()
    assert key != "changeme"
    assert (tmp_path / "secret_key").read_text() == key


@pytest.mark.parametrize("secret_key", [None, "", "changeme", "CHANGEME"])
def test_production_refuses_missing_or_default_secret_key(
    tmp_path: Path, secret_key: str | None
) -> None:
    settings = _settings(tmp_path, env=Environment.PRODUCTION, secret_key=secret_key)
    with pytest.raises(ConfigurationError, match="RAPPIT_SECRET_KEY must be set"):
        settings.resolved_secret_key()
    # Nothing is invented on the way: a generated key would differ on the next host.
    assert not (tmp_path / "secret_key").exists()


def test_settings_read_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPPIT_ENV", "production")
    monkeypatch.setenv("RAPPIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAPPIT_DATABASE_URL", "postgres://u@db/rappit")
    monkeypatch.setenv("RAPPIT_PORT", "9000")
    settings = Settings()
    assert settings.is_production
    assert settings.data_dir == tmp_path
    assert settings.sqlalchemy_database_url() == "postgresql+asyncpg://u@db/rappit"
    assert settings.port == 9000
