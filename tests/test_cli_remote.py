"""Remote mode's parts without a server: the REST client's creation retries (httpx.MockTransport),
error answers turned into the errors local mode raises, profiles, and the commands that need the
database refusing ``--server``. (Both modes against a real server: tests/api/test_cli_modes.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tasker_host.cli.main import build_cli
from tasker_host.cli.profiles import remote_target, save_profiles
from tasker_host.cli.remote import RemoteTasks
from tasker_host.cli.state import CliState
from tasker_host.errors import (
    InvalidContextError,
    NoMatchingVersionError,
    RemoteRequestError,
    StoreUnavailableError,
    TaskNotFoundError,
)

SERVER = "http://tasker.test/tasker"
TASK = {"id": "t1", "status": "pending", "full_name": "payments.process_refund@2.1.3"}


def client(handler: Any, sleeps: list[float] | None = None) -> RemoteTasks:
    return RemoteTasks(SERVER, "secret", transport=httpx.MockTransport(handler),
                       sleep=(sleeps if sleeps is not None else []).append)


def test_a_creation_answered_503_is_repeated_with_the_same_key_after_retry_after() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, json={"error": "database_unavailable", "message": "down"},
                                  headers={"Retry-After": "2"})
        return httpx.Response(201, json=TASK)

    sleeps: list[float] = []
    notes: list[str] = []
    doc = client(handler, sleeps).create("payments", "process_refund", "~=2.1", {"a": 1}, on_retry=notes.append)
    assert doc == TASK
    assert len(seen) == 2 and sleeps == [2.0]
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1 and next(iter(keys)).startswith("cli-")
    assert json.loads(seen[1].content) == {"namespace": "payments", "name": "process_refund", "context": {"a": 1},
                                           "version": "~=2.1"}
    assert seen[0].headers["Authorization"] == "Bearer secret"
    assert "trying again in 2.0s" in notes[0]


def test_a_given_key_is_sent_and_a_lasting_503_ends_as_the_database_error() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        return httpx.Response(503, json={"error": "database_unavailable", "message": "down"})

    sleeps: list[float] = []
    with pytest.raises(StoreUnavailableError, match="down"):
        client(handler, sleeps).create("payments", "process_refund", None, {}, "my-key")
    assert seen == ["my-key"] * 5 and len(sleeps) == 4 and all(s > 0 for s in sleeps)


def test_waiting_polls_with_growing_pauses_and_rides_out_a_503() -> None:
    answers = iter([httpx.Response(200, json=TASK | {"status": "in_progress"}),
                    httpx.Response(503, json={"error": "database_unavailable", "message": "down"}),
                    httpx.Response(200, json=TASK | {"status": "in_progress"}),
                    httpx.Response(200, json=TASK | {"status": "complete"})])
    sleeps: list[float] = []
    seen: list[str] = []
    doc = client(lambda request: next(answers), sleeps).wait("t1", on_poll=lambda d: seen.append(d["status"]))
    assert doc["status"] == "complete" and seen == ["in_progress", "in_progress", "complete"]
    assert len(sleeps) == 3 and sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1]


@pytest.mark.parametrize(("status", "body", "error", "text"), [
    (404, {"error": "not_found", "message": "no task 'x'"}, TaskNotFoundError, "no task 'x'"),
    (404, {"error": "no_matching_version", "message": "none", "available": ["2.1.3"]}, NoMatchingVersionError, "none"),
    (422, {"error": "invalid_context", "message": "context is invalid", "problems": [{"path": "a"}]},
     InvalidContextError, "context is invalid"),
    (403, {"error": "forbidden", "message": "viewer may not cancel tasks in namespace 'payments'"},
     RemoteRequestError, "403 forbidden: viewer may not cancel tasks in namespace 'payments'"),
    (401, {"error": "unauthorized", "message": "unknown or revoked token"}, RemoteRequestError,
     f"log in again: tasker-host login {SERVER}"),
])
def test_error_answers_become_the_errors_local_mode_raises(status: int, body: dict[str, Any], error: type,
                                                            text: str) -> None:
    remote = client(lambda request: httpx.Response(status, json=body))
    with pytest.raises(error) as raised:
        remote.get_task("x")
    assert text in str(raised.value)


def test_an_unreachable_server_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(RemoteRequestError, match=f"cannot reach {SERVER}: connection refused"):
        client(handler).list_tasks(None, None, None, 10)


def test_list_pages_through_the_cursor_up_to_the_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        start = int(request.url.params.get("cursor", "0"))
        tasks = [{"id": str(i)} for i in range(start, start + limit)]
        return httpx.Response(200, json={"tasks": tasks, "next_cursor": str(start + limit)})

    docs = client(handler).list_tasks(["payments"], None, "error", 450)
    assert [d["id"] for d in docs] == [str(i) for i in range(450)]


def test_profile_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert remote_target(None, "t", None) is None  # no server, no profile: local mode
    save_profiles({"default": {"server": "http://a/tasker", "token": "ta"},
                   "b": {"server": "http://b/tasker", "token": "tb"}})
    assert remote_target("http://b/tasker/", None, None).token == "tb"  # the profile stored for that server
    assert remote_target("http://c/tasker", None, "b").token == "tb"  # --profile: its token, the given server
    assert remote_target(None, None, "b").server == "http://b/tasker"
    assert remote_target("http://b/tasker", "flag", None).token == "flag"
    with pytest.raises(Exception, match="no API token for http://c/tasker"):
        remote_target("http://c/tasker", None, None)


@pytest.mark.parametrize("command", [
    ["db", "upgrade"], ["db", "current"], ["tokens", "create", "--name", "ops", "--admin"], ["tokens", "list"],
    ["tokens", "revoke", "ops"], ["serve"], ["worker"], ["check"],
])
def test_commands_that_need_the_database_refuse_remote_mode(command: list[str], tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    result = CliRunner().invoke(build_cli(), ["--database-url", f"sqlite:///{db}", "--server", SERVER,
                                              "--token", "t", *command], obj=CliState(),
                                env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert f"`{' '.join(command[:2] if command[0] in ('db', 'tokens') else command[:1])}` talks to the " \
           "database directly; it cannot run with --server" in result.stderr
    assert not db.exists()
