"""``tasker-host audit`` and the rows the CLI writes: locally (SQLite file, PostgreSQL) each
action is recorded as ``cli`` with the operating-system user; through ``--server`` as the token's
principal (the API records it), and the remote listing is the API's (a manager: its namespace)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tasker_host.store.sql.engine import upgrade

from .test_cli_modes import PAYMENTS, Invoke, invoker, run


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def local(request: pytest.FixtureRequest, tmp_path: Path) -> Invoke:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tasker.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        upgrade(url)
    return invoker(["--database-url", url], tmp_path)


def listed(cli: Invoke, *args: str) -> list[dict[str, Any]]:
    result: Result = cli("audit", "--json", *args)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def test_local_actions_are_recorded_as_cli_and_the_os_user(local: Invoke) -> None:
    failed = json.loads(run(local, PAYMENTS | {"simulate": {"process_gateway_refund": ["declined"]}},
                            "--json").stdout)
    assert local("tasks", "retry", failed["id"]).exit_code == 0  # (without --wait: not run here)
    assert local("tasks", "cancel", failed["id"]).exit_code == 0
    assert local("tokens", "create", "--name", "ci-payments", "--namespace", "payments").exit_code == 0
    assert local("tokens", "revoke", "ci-payments").exit_code == 0
    found = listed(local)
    assert [(r["action"], r["target"]) for r in found] == [
        ("token.revoke", "ci-payments"), ("token.create", "ci-payments"), ("task.cancel", failed["id"]),
        ("task.retry", failed["id"]), ("task.create", failed["id"])]
    assert {(r["principal"], r["actor_kind"], r["os_user"], r["token_name"]) for r in found} == {
        ("cli", "cli", getpass.getuser(), None)}
    assert [r["target"] for r in listed(local, "--namespace", "payments", "--limit", "2")] == [failed["id"]] * 2
    assert listed(local, "--since", "2999-01-01") == []
    text = local("audit", "--since", "1h")
    assert text.exit_code == 0 and f"cli ({getpass.getuser()})" in text.stdout and "task.cancel" in text.stdout
    bad = local("audit", "--since", "soon")
    assert bad.exit_code == 2 and "30m, 12h, 7d" in bad.output


def test_remote_actions_are_recorded_as_the_token_and_listed_by_the_api(serve: Callable[..., Any],
                                                                         tmp_path: Path) -> None:
    live = serve()
    admin = invoker(["--server", live.base, "--token", live.tokens["admin"]], tmp_path)
    payments = invoker(["--server", live.base, "--token", live.tokens["payments"]], tmp_path)
    viewer = invoker(["--server", live.base, "--token", live.tokens["payments_viewer"]], tmp_path)
    done = json.loads(run(payments, PAYMENTS, "--json").stdout)
    ping = admin("run", "shared.ping@1.0.0", "--json")
    assert ping.exit_code == 0, ping.output
    everything = listed(admin)
    assert [(r["action"], r["namespace"], r["principal"], r["actor_kind"]) for r in everything] == [
        ("task.create", "shared", "admin", "api"), ("task.create", "payments", "payments", "api")]
    assert [r["target"] for r in listed(payments)] == [done["id"]]  # its namespace only
    refused = viewer("audit", "--json")
    assert refused.exit_code == 1 and "audit trail" in refused.stdout
