"""``python -m tasker_host.migrations ...``: the Alembic CLI on tasker-host's migrations."""

from __future__ import annotations

import os
import sys

from alembic.config import CommandLine

from tasker_host.migrations import make_config
from tasker_host.store.urls import default_sqlite_url, normalize_url


def main(argv: list[str] | None = None) -> None:
    cli = CommandLine(prog="python -m tasker_host.migrations")
    options = cli.parser.parse_args(argv if argv is not None else sys.argv[1:])
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    url = normalize_url(os.environ.get("TASKER_DATABASE_URL") or default_sqlite_url())
    cli.run_cmd(make_config(url), options)


if __name__ == "__main__":
    main()
