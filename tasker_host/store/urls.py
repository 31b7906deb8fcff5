"""Database URLs: normalising what users type, and the embedded SQLite default."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tasker_host.errors import ConfigurationError

HOME_ENV = "TASKER_HOME"
DB_FILENAME = "tasker.db"

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg3"}


def normalize_url(url: str) -> str:
    """Return a SQLAlchemy URL string for ``url``.

    ``postgres://`` and ``postgresql://`` (and ``postgresql+psycopg3://``) select the psycopg 3
    driver (``postgresql+psycopg://``); ``sqlite:`` URLs and explicit drivers pass through.
    """
    return render_url(parse_url(url))


def parse_url(url: str) -> URL:
    """Parse and normalise ``url`` (see :func:`normalize_url`); bad input is a ConfigurationError."""
    text = (url or "").strip()
    if not text:
        raise ConfigurationError("the database URL is empty")
    try:
        parsed = make_url(text)
    except ArgumentError as exc:
        raise ConfigurationError(f"not a database URL: {url!r} (expected sqlite:///path or "
                                 "postgresql://user@host/db)") from exc
    if parsed.drivername in _POSTGRES_SCHEMES:
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigurationError(f"unsupported database {backend!r} in {render_url(parsed, hide=True)}: "
                                 "use sqlite:///path or postgresql://user@host/db")
    return parsed


def render_url(url: URL, *, hide: bool = False) -> str:
    return url.render_as_string(hide_password=hide)


def is_sqlite(url: str | URL) -> bool:
    parsed = url if isinstance(url, URL) else parse_url(url)
    return parsed.get_backend_name() == "sqlite"


def is_sqlite_memory(url: str | URL) -> bool:
    parsed = url if isinstance(url, URL) else parse_url(url)
    return is_sqlite(parsed) and parsed.database in (None, "", ":memory:")


def redact(url: str) -> str:
    """``url`` with any password masked, for messages and logs."""
    try:
        return render_url(parse_url(url), hide=True)
    except ConfigurationError:
        return "<invalid URL>"


def data_dir() -> Path:
    """``$TASKER_HOME`` or the per-user data directory (``~/.local/share/tasker-host``)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "tasker-host"


def default_sqlite_url() -> str:
    """The embedded default: ``sqlite:///<data dir>/tasker.db`` (the directory is created)."""
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(directory / DB_FILENAME).resolve()}"
