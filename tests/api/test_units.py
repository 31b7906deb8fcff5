"""Small pieces on their own: bearer parsing, cursors, times, counts, formatters, the error table;
and the app with an injected authenticator and with store calls in worker threads."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tasker_host.api.access_log import JsonFormatter, KeyValueFormatter
from tasker_host.api.auth import bearer_token
from tasker_host.api.errors import as_api_error
from tasker_host.api.requests import CURSOR_PATTERN, _cursor, encode_cursor, parse_timestamp
from tasker_host.auth import Grant, Principal
from tasker_host.engine.events import EventKind
from tasker_host.errors import InvalidContextError, InvalidStateError, NoMatchingVersionError, PluginError
from tasker_host.host import build_host
from tasker_host.settings import HostSettings
from tasker_host.store.base import TaskFilter
from tasker_host.store.memory import MemoryStore

from .conftest import SEED_PAYMENTS, Live, make_host, shared_entry_point


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer tsk_abc", "tsk_abc"), ("bearer   tsk_abc ", "tsk_abc"), ("Bearer", None), ("Basic tsk_abc", None),
    ("Bearer a b", None), ("", None), (None, None),
])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_cursor_round_trip_and_unknown_cursors() -> None:
    cursor = encode_cursor("6f1c5d0e-0000-4000-8000-000000000000")
    assert CURSOR_PATTERN.fullmatch(cursor)
    problems: list[dict[str, str]] = []
    assert _cursor(cursor, problems) == "6f1c5d0e-0000-4000-8000-000000000000" and problems == []
    assert _cursor("dDE6_-_-", problems) is not None and problems == []  # well-formed: an unknown task
    assert _cursor("abc", problems) is None and problems[0]["path"] == "cursor"


@pytest.mark.parametrize(("text", "epoch"), [
    ("1700000000", 1_700_000_000.0), ("1700000000.5", 1_700_000_000.5), ("2023-11-14T22:13:20Z", 1_700_000_000.0),
    ("2023-11-14t22:13:20z", 1_700_000_000.0), ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
    ("2023-11-14T22:13:20", 1_700_000_000.0),
])
def test_parse_timestamp(text: str, epoch: float) -> None:
    assert parse_timestamp(text) == epoch


@pytest.mark.parametrize("text", ["yesterday", "nan", "inf", "2023-13-01"])
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_counts_agree_between_memory_and_sql(tmp_path: Path) -> None:
    hosts = [build_host(HostSettings(), entry_points=[shared_entry_point()], store=MemoryStore()),
             make_host(tmp_path / "t.db", entry_points=[shared_entry_point()])]
    counts = []
    for host in hosts:
        for _ in range(3):
            host.service.create_task("shared", "ping", None, {})
        host.service.cancel_task(host.service.list_tasks(TaskFilter())[0].id)
        counts.append(host.store.count_by_state())
        host.close()
    assert counts[0] == counts[1]
    assert dict(counts[0].tasks) == {("shared", "pending"): 2, ("shared", "cancelled"): 1}
    assert dict(counts[0].steps) == {("shared", "pending"): 2}
    assert counts[0].tasks_by_state() == {"cancelled": 1, "pending": 2}


def test_formatters_write_one_structured_line() -> None:
    record = logging.LogRecord("tasker_host.api.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.fields = {"status": 200, "principal": "ci payments"}
    doc = json.loads(JsonFormatter().format(record))
    assert (doc["message"], doc["status"], doc["level"]) == ("GET /x", 200, "info")
    text = KeyValueFormatter().format(record)
    assert 'msg="GET /x"' in text and "status=200" in text and 'principal="ci payments"' in text


@pytest.mark.parametrize(("exc", "status", "code"), [
    (InvalidContextError("a.b@1", [{"path": "context", "message": "x"}]), 422, "invalid_context"),
    (NoMatchingVersionError("none", available=["1.0.0"]), 404, "no_matching_version"),
    (InvalidStateError("done"), 409, "invalid_state"), (PluginError("?"), 500, "internal_error"),
    (RuntimeError("bug"), 500, "internal_error"),
])
def test_one_error_table(exc: Exception, status: int, code: str) -> None:
    error = as_api_error(exc)
    assert (error.status, error.code) == (status, code)
    if isinstance(exc, InvalidContextError):
        assert error.problems == [{"path": "context", "message": "x"}]
    if status == 500:
        assert "bug" not in error.message


def test_injected_authenticator(serve: Any) -> None:
    def authenticate(token: str) -> Principal | None:
        return Principal("robot", grants=(Grant("shared"),)) if token == "let-me-in" else None

    live = serve(run_worker=False, authenticate=authenticate)
    ok = live.client.post("/tasks", json={"namespace": "shared", "name": "ping"},
                          headers={"Authorization": "Bearer let-me-in"})
    assert ok.status_code == 201
    assert live.client.get("/tasks", headers=live.auth("admin")).status_code == 401  # store tokens unused


def test_store_calls_in_worker_threads(serve: Any, tmp_path: Path) -> None:
    host = make_host(tmp_path / "t.db")
    host.store.inline = False  # as on PostgreSQL: the API calls the store in worker threads
    live: Live = serve(host=host)
    task = live.create(copy.deepcopy(SEED_PAYMENTS)).json()
    assert live.waiter.wait(task["id"]) is EventKind.TASK_COMPLETED
    assert live.client.get(f"/tasks/{task['id']}", headers=live.auth("admin")).json()["status"] == "complete"
    assert [t["id"] for t in live.client.get("/tasks", headers=live.auth("admin")).json()["tasks"]] == [task["id"]]
    assert live.client.get("/health/ready").status_code == 200
    assert "tasker_tasks{" in live.client.get("/metrics", headers=live.auth("admin")).text


def test_token_cache_remembers_accepted_tokens_for_its_ttl_only():
    from tasker_host.api.auth import TokenCache
    from tasker_host.auth import Principal

    calls, now = [], [0.0]
    answers = {"good": Principal("team"), "bad": None}

    def check(bearer):
        calls.append(bearer)
        return answers[bearer]

    cache = TokenCache(check, 5.0, clock=lambda: now[0])
    assert cache("good") == Principal("team") and cache("good") == Principal("team")
    assert calls == ["good"]  # the second request needed no lookup
    assert cache("bad") is None and cache("bad") is None
    assert calls == ["good", "bad", "bad"]  # rejections are never cached
    answers["good"] = None  # revoked
    now[0] = 5.1
    assert cache("good") is None and calls[-1] == "good"
    assert cache.cached("good") is None and cache.cached("never seen") is None  # no lookup either
    assert calls[-1] == "good" and len(calls) == 4


def test_token_cache_checks_a_token_once_for_requests_that_arrive_together():
    import threading

    from tasker_host.api.auth import TokenCache
    from tasker_host.auth import Principal

    calls, entered, release = [], threading.Event(), threading.Event()

    def slow_check(bearer):
        calls.append(bearer)
        entered.set()
        release.wait(10)  # the token store is slow: the other requests arrive meanwhile
        return Principal("team")

    cache = TokenCache(slow_check, 5.0)
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(cache("good"))) for _ in range(8)]
    threads[0].start()
    assert entered.wait(10)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert answers == [Principal("team")] * 8 and calls == ["good"]
    assert cache.cached("good") == Principal("team")


def test_create_batcher_writes_concurrent_requests_together_and_answers_each():
    import anyio

    from tasker_host.api.batching import CreateBatcher

    batches: list[list[str]] = []

    async def submit(tasks):
        batches.append(list(tasks))
        await anyio.lowlevel.checkpoint()  # a write that yields (a worker thread): others queue up meanwhile
        return [f"result-{t}" for t in tasks]

    async def main():
        batcher = CreateBatcher(submit, max_batch=8)
        got = {}

        async def one(i):
            got[i] = await batcher.create(f"t{i}")

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
        return got

    got = anyio.run(main)
    assert got == {i: f"result-t{i}" for i in range(20)}
    assert sorted(t for b in batches for t in b) == sorted(f"t{i}" for i in range(20))
    assert max(len(b) for b in batches) == 8 and len(batches) < 20  # grouped, capped


def test_create_batcher_gives_a_failed_batch_its_error_and_keeps_going():
    import anyio
    import pytest

    from tasker_host.api.batching import CreateBatcher

    calls = []

    async def submit(tasks):
        calls.append(list(tasks))
        if "boom" in tasks:
            raise RuntimeError("database is down")
        return [f"ok-{t}" for t in tasks]

    async def main():
        batcher = CreateBatcher(submit)
        with pytest.raises(RuntimeError, match="database is down"):
            await batcher.create("boom")
        return await batcher.create("next")

    assert anyio.run(main) == "ok-next" and calls == [["boom"], ["next"]]


def test_a_client_that_disconnects_mid_body_is_not_a_server_error(tmp_path, caplog):
    import logging

    import anyio

    from tasker_host.api.app import create_app
    from tasker_host.auth import Principal
    from tasker_host.store.base import TaskFilter
    from tests.api.conftest import make_host

    host = make_host(tmp_path / "t.db")
    app = create_app(host, run_worker=False, authenticate=lambda token: Principal("admin", admin=True))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/tasker/tasks", "raw_path": b"/tasker/tasks", "query_string": b"",
             "root_path": "", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "headers": [(b"authorization", b"Bearer x"), (b"content-type", b"application/json")]}
    messages = iter([{"type": "http.request", "body": b'{"name": "process', "more_body": True},
                     {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    caplog.set_level(logging.INFO)
    anyio.run(app, scope, receive, send)
    assert sent[0]["status"] == 499
    assert "client disconnected during POST /tasker/tasks" in caplog.text
    assert "unhandled error" not in caplog.text
    assert host.store.list_tasks(TaskFilter()) == []


@pytest.mark.parametrize("seed", range(12))
def test_create_batcher_with_several_writers_answers_everyone(seed):
    import random

    import anyio

    from tasker_host.api.batching import CreateBatcher

    rng = random.Random(seed)

    async def submit(tasks):
        for _ in range(rng.randint(0, 3)):
            await anyio.lowlevel.checkpoint()
        return [f"r-{t}" for t in tasks]

    async def main():
        batcher = CreateBatcher(submit, max_batch=3, writers=3)
        got = {}

        async def one(i):
            for _ in range(rng.randint(0, 2)):
                await anyio.lowlevel.checkpoint()
            got[i] = await batcher.create(i)

        with anyio.fail_after(10):  # a lost writer's role would hang here
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, i)
        return got, batcher._writing

    got, writing = anyio.run(main)
    assert got == {i: f"r-{i}" for i in range(200)} and writing == 0


def test_token_cache_forgets_revoked_tokens_and_keeps_no_check_that_raced_a_revocation():
    from tasker_host.api.auth import TokenCache
    from tasker_host.auth import Principal, token_digest

    cache: TokenCache
    revoke_during_check = [False]

    def check(bearer):
        if revoke_during_check[0]:  # the revocation commits and is notified while this check runs
            cache.forget(token_digest(bearer))
        return Principal(bearer)

    cache = TokenCache(check, 300.0)
    assert cache("a") == Principal("a") and cache("b") == Principal("b")
    cache.forget(token_digest("a"))
    assert cache.cached("a") is None and cache.cached("b") == Principal("b")
    cache.clear()
    assert cache.cached("b") is None
    revoke_during_check[0] = True
    assert cache("c") == Principal("c")  # answered from the check that began before the revocation ...
    assert cache.cached("c") is None  # ... but not remembered: the next request checks again
