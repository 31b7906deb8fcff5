"""`tasker-host tokens create | list | revoke` on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tasker_host.auth import Access, Grant, Principal
from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState
from tasker_host.store.sql import SqlStore
from tasker_host.store.tokens import token_store_for
from tasker_host.tokens import authenticate


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tasker.db'}"


@pytest.fixture
def cli(db: str):  # type: ignore[no-untyped-def]
    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(build_cli(), ["--database-url", db, *args], obj=CliState())

    return invoke


def principal_of(db: str, token: str) -> Principal | None:
    store = SqlStore(db)
    try:
        return authenticate(token_store_for(store), token)
    finally:
        store.close()


def listed(cli) -> list[dict]:  # type: ignore[no-untyped-def]
    result = cli("tokens", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_prints_a_summary_then_the_token_alone_on_the_last_line(cli, db) -> None:
    result = cli("tokens", "create", "--name", "ci-payments", "--namespace", "payments",
                 "--namespace", "shared:view")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    token = lines[-1]
    assert token.startswith("tsk_") and token == token.strip() and " " not in token
    assert "ci-payments" in lines[0]
    assert "payments (manage), shared (view)" in result.stdout
    assert result.stdout.count(token) == 1 and result.stderr == ""
    assert principal_of(db, token) == Principal(
        "ci-payments", grants=(Grant("payments"), Grant("shared", Access.VIEW)))


def test_create_admin_with_json_prints_one_document_with_the_token(cli, db) -> None:
    result = cli("tokens", "create", "--name", "ops", "--admin", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"id", "name", "admin", "grants", "created_at", "revoked", "revoked_at", "token"}
    assert (doc["name"], doc["admin"], doc["grants"], doc["revoked"]) == ("ops", True, [], False)
    assert principal_of(db, doc["token"]) == Principal("ops", admin=True)


@pytest.mark.parametrize(("args", "message"), [
    (["--namespace", "payments:write"], "invalid grant 'payments:write': the level must be manage or view"),
    (["--namespace", ":view"], "expected NAMESPACE[:manage|:view]"),
    (["--namespace", "payments", "--namespace", "bad:level"], "invalid grant 'bad:level'"),
    ([], "give --admin or at least one --namespace"),
    (["--admin", "--namespace", "payments"], "either --admin or --namespace, not both"),
])
def test_create_refuses_bad_access_and_writes_nothing(cli, db, tmp_path, args, message) -> None:
    result = cli("tokens", "create", "--name", "ci", *args)
    assert result.exit_code in (1, 2)
    assert message in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "tasker.db").exists()  # refused before the database was even opened
    as_json = cli("tokens", "create", "--name", "ci", *args, "--json")
    assert as_json.exit_code in (1, 2)
    assert message in json.loads(as_json.stdout)["message"]


def test_create_refuses_a_bad_name(cli) -> None:
    result = cli("tokens", "create", "--name", "  ", "--admin")
    assert result.exit_code == 1 and "needs a name" in result.stderr
    assert listed(cli) == []


def test_create_without_a_name_is_a_usage_error(cli) -> None:
    result = cli("tokens", "create", "--admin")
    assert result.exit_code == 2 and "Missing option '--name'" in result.stderr


def test_a_duplicate_name_is_an_error_and_nothing_is_written(cli, db) -> None:
    first = cli("tokens", "create", "--name", "ci", "--namespace", "payments")
    assert first.exit_code == 0, first.output
    before = listed(cli)
    again = cli("tokens", "create", "--name", "ci", "--admin")
    assert again.exit_code == 1
    assert "a token named 'ci' already exists" in again.stderr
    assert "tsk_" not in again.output
    assert listed(cli) == before
    as_json = cli("tokens", "create", "--name", "ci", "--admin", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"] == "ConfigurationError"
    assert listed(cli) == before
    assert principal_of(db, first.stdout.splitlines()[-1]) == Principal("ci", grants=(Grant("payments"),))


def test_list_json_shows_tokens_oldest_first_and_never_the_secret(cli) -> None:
    assert listed(cli) == []
    tokens = []
    for args in (["--name", "ci", "--namespace", "payments:view"], ["--name", "ops", "--admin"]):
        result = cli("tokens", "create", *args)
        assert result.exit_code == 0, result.output
        tokens.append(result.stdout.splitlines()[-1])
    docs = listed(cli)
    assert [(d["name"], d["admin"], d["grants"], d["revoked"], d["revoked_at"]) for d in docs] == [
        ("ci", False, ["payments:view"], False, None), ("ops", True, [], False, None)]
    assert all(set(d) == {"id", "name", "admin", "grants", "created_at", "revoked", "revoked_at"} for d in docs)
    assert all(len(d["id"]) == 32 and d["created_at"].endswith("Z") for d in docs)
    text = cli("tokens", "list")
    assert text.exit_code == 0
    assert "ci" in text.stdout and "payments (view)" in text.stdout and "admin" in text.stdout
    for output in (text.stdout, json.dumps(docs)):
        assert not any(t in output for t in tokens)
        assert "digest" not in output


def test_list_without_tokens_says_how_to_create_one(cli) -> None:
    result = cli("tokens", "list")
    assert result.exit_code == 0 and "tasker-host tokens create" in result.stdout


@pytest.mark.parametrize("by", ["name", "id"])
def test_revoke_then_the_token_no_longer_authenticates(cli, db, by) -> None:
    created = json.loads(cli("tokens", "create", "--name", "ci", "--namespace", "payments", "--json").stdout)
    assert principal_of(db, created["token"]) is not None
    result = cli("tokens", "revoke", created[by], "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["id"], doc["revoked"]) == (created["id"], True) and doc["revoked_at"]
    assert "token" not in doc
    assert principal_of(db, created["token"]) is None
    assert [d["revoked"] for d in listed(cli)] == [True]
    again = cli("tokens", "revoke", "ci")
    assert again.exit_code == 0 and "already revoked" in again.stdout


def test_revoke_an_unknown_token_exits_1(cli) -> None:
    cli("tokens", "create", "--name", "ci", "--admin")
    result = cli("tokens", "revoke", "nobody")
    assert result.exit_code == 1
    assert "no token with id or name 'nobody'" in result.stderr
    as_json = cli("tokens", "revoke", "nobody", "--json")
    assert as_json.exit_code == 1 and "'nobody'" in json.loads(as_json.stdout)["message"]
    assert [d["revoked"] for d in listed(cli)] == [False]


@pytest.mark.parametrize("command", [["tokens"], ["tokens", "create"], ["tokens", "list"], ["tokens", "revoke"]])
def test_help_texts_teach_with_examples(cli, command) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "tasker-host tokens" in result.stdout
