"""The value rule at the API's edge, on SQLite and PostgreSQL, against a live server whose engine
runs: values that cannot be stored (lone surrogates, NUL, 1e400, too deep) are a 422
``invalid_request`` listing every path, nothing is written, and the engine keeps running.
Regression tests of bodies that used to answer 500 after writing the task (SQLite: then killing
the runner, again after each restart) or without writing it (PostgreSQL)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tasker_host.engine.events import EventKind

from .conftest import SEED_PAYMENTS, Live, live_server, make_host

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def db_live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if request.param == "sqlite":
        host = make_host(tmp_path_factory.mktemp("values") / "t.db")
    else:
        host = make_host(request.getfixturevalue("postgres_module_url"))
    with live_server(host) as live:
        yield live


def post_raw(live: Live, text: str, path: str = "/tasks") -> Any:
    return live.client.post(path, content=text.encode("utf-8"),
                            headers=live.auth("admin", **{"Content-Type": "application/json"}))


def refused(live: Live, text: str, path: str = "/tasks") -> list[str]:
    """POST ``text``; assert a 422 ``invalid_request`` that wrote nothing; the problems' paths."""
    before = live.rows()
    response = post_raw(live, text, path)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request" and body["message"]
    assert all(p["message"] for p in body["problems"])
    assert live.rows() == before, "a refused request wrote something"
    return [p["path"] for p in body["problems"]]


def still_runs(live: Live) -> None:
    """The engine is alive: /health/ready answers 200 and a good task completes."""
    assert live.client.get("/health/ready").status_code == 200
    doc = live.create(SEED_PAYMENTS).json()
    assert live.waiter.wait(doc["id"]) is EventKind.TASK_COMPLETED


def seed_text(context: str) -> str:
    """The seed payments request with ``context`` as raw JSON text."""
    body = copy.deepcopy(SEED_PAYMENTS)
    body["context"] = "@@"
    return json.dumps(body).replace('"@@"', context)


def test_a_lone_surrogate_sent_as_an_escape_is_refused(db_live: Live) -> None:
    paths = refused(db_live, seed_text(r'{"payment_id": "\ud800", "refund_amount": 1}'))
    assert paths == ["context.payment_id"]
    still_runs(db_live)


def test_1e400_is_refused_not_stored_as_infinity(db_live: Live) -> None:
    paths = refused(db_live, seed_text('{"payment_id": "pay_1", "refund_amount": 1e400, "x": [-1e400]}'))
    assert paths == ["context.refund_amount", "context.x[0]"]
    assert db_live.client.get("/tasks", headers=db_live.auth("admin")).status_code == 200
    still_runs(db_live)


def test_nul_is_refused(db_live: Live) -> None:
    paths = refused(db_live, seed_text(r'{"payment_id": "pay\u0000", "refund_amount": 1, "n\u0000": 1}'))
    assert paths == ["context.payment_id", 'context["n\\u0000"]']
    still_runs(db_live)


def test_every_bad_path_is_listed_in_one_answer_with_the_shape_problems(db_live: Live) -> None:
    text = ('{"task": {"namespace": "payments", "name": "process\\u0000refund", "priority": 1, '
            '"context": {"payment_id": "\\udfff", "items": [{"name": "ok"}, {"name": "a\\u0000"}, {"q": 1e999}], '
            '"\\ud800key": {"deep": "\\ud83d"}}}}')
    assert refused(db_live, text) == [
        "task.priority", "task.name", "task.context.payment_id", "task.context.items[1].name",
        "task.context.items[2].q", 'task.context["\\ud800key"]', 'task.context["\\ud800key"].deep']


def test_nesting_deeper_than_the_bound_is_refused(db_live: Live) -> None:
    deep = "[" * 70 + "]" * 70
    assert refused(db_live, seed_text(f'{{"payment_id": "p", "refund_amount": 1, "deep": {deep}}}')) == [
        "context.deep" + "[0]" * 63]


def test_resolve_results_that_cannot_be_stored_are_refused_and_the_step_stays_failed(db_live: Live) -> None:
    body = copy.deepcopy(SEED_PAYMENTS)
    body["context"]["simulate"] = {"notify_customer": "auth"}  # a permanent failure
    doc = db_live.create(body).json()
    assert db_live.waiter.wait(doc["id"]) is EventKind.TASK_FAILED
    url = f"/tasks/{doc['id']}/steps/notify_customer/resolve"
    assert refused(db_live, r'{"results": {"a": "\u0000", "b": [1e400]}, "x\ud800": 1}', url) == [
        '["x\\ud800"]', "results.a", "results.b[0]"]
    task = db_live.client.get(f"/tasks/{doc['id']}", headers=db_live.auth("admin")).json()
    assert task["status"] == "error" and task["steps"][-1]["state"] == "error"


def test_nul_in_a_query_or_a_task_id_is_a_4xx_not_a_database_error(db_live: Live) -> None:
    who = db_live.auth("admin")
    listed = db_live.client.get("/tasks", params={"name": "a\x00", "namespace": "payments"}, headers=who)
    assert listed.status_code == 422 and [p["path"] for p in listed.json()["problems"]] == ["name"]
    for method, path in (("GET", "/tasks/a%00b"), ("DELETE", "/tasks/%00"), ("POST", "/tasks/%00/retry")):
        assert db_live.client.request(method, path, headers=who).status_code == 404


# -- values written before the rule (SQLite kept them) ---------------------------------------------


def test_rows_written_before_the_rule_are_rendered_not_a_500(serve: Any, tmp_path_factory: Any) -> None:
    """SQLite stored ``Infinity``, ``NaN`` and escaped lone surrogates; reads must still answer."""
    live = serve(host=make_host(tmp_path_factory.mktemp("legacy") / "t.db"))
    doc = live.create(SEED_PAYMENTS).json()
    assert live.waiter.wait(doc["id"]) is EventKind.TASK_COMPLETED
    engine = sa.create_engine(live.host.store.url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE tasks SET context = :c WHERE id = :id"),
                     {"c": '{"payment_id": "p\\ud800", "refund_amount": Infinity}', "id": doc["id"]})
        conn.execute(sa.text("UPDATE steps SET results = :r WHERE task_id = :id"),
                     {"r": '{"fee": NaN, "rate": -Infinity}', "id": doc["id"]})
    engine.dispose()
    who = live.auth("admin")
    shown = live.client.get(f"/tasks/{doc['id']}", headers=who)
    assert shown.status_code == 200, shown.text
    assert shown.json()["context"] == {"payment_id": "p\ufffd", "refund_amount": None}
    assert all(s["results"] == {"fee": None, "rate": None} for s in shown.json()["steps"])
    listed = live.client.get("/tasks", headers=who)
    assert listed.status_code == 200
    assert [t["context"] for t in listed.json()["tasks"] if t["id"] == doc["id"]] == [
        {"payment_id": "p\ufffd", "refund_amount": None}]
