"""Alembic migrations of the tasker-host schema, configured in code (no ``alembic.ini``).

The package is pip-installed, so the script location is found next to this file. Developers can
still use the Alembic command line through ``python -m tasker_host.migrations`` (same arguments as
``alembic``; the URL comes from ``TASKER_DATABASE_URL`` or the embedded SQLite default)::

    python -m tasker_host.migrations revision --autogenerate -m "add things"
    python -m tasker_host.migrations upgrade head
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parent


def make_config(url: str | None = None, connection: Any = None) -> Config:
    """An Alembic :class:`Config` pointing at these migrations.

    ``url``: SQLAlchemy URL (already normalised) used when no ``connection`` is given;
    ``connection``: an open SQLAlchemy ``Connection`` the migrations run on (``env.py`` uses it).
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("version_locations", str(SCRIPT_LOCATION / "versions"))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        # ConfigParser interpolation: a literal '%' must be doubled
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg
