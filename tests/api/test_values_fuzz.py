"""Fuzzing ``POST /tasks`` with hostile JSON (hypothesis, 200 cases per database, SQLite and
PostgreSQL), through the real server: contexts built as Python values (any text, including lone
surrogates and NUL; any float, huge integers, deep nesting, non-ASCII keys) and as raw JSON text
(``1e400``, ``"\\ud800"``, ``"\\u0000"``, 400-digit numbers, ``NaN``, brackets 100 deep), sent to a
template whose schema takes any object; and contexts of storable values only, so the accepting
path gets its share of the cases. Every answer is either a 2xx for a task that then runs
to completion (the engine drained here) with its context echoed back as a step's results, or a
4xx that wrote nothing. Never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tasker_host import StepHandler
from tasker_host.models import TaskState
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc

from .conftest import Live, live_server, make_host

CASES = 200
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Echo(StepHandler):
    async def process(self, ctx: Any) -> Any:
        return dict(ctx.task.context)


class Count(StepHandler):
    async def process(self, ctx: Any) -> Any:
        return {"keys": len(ctx.results["echo"])}


def fuzz_entry_point() -> FakeEntryPoint:
    steps = [{"name": "echo", "handler_class": "Echo"},
             {"name": "count", "handler_class": "Count", "depends_on_step": "echo"}]
    plugin = make_plugin(namespaces=["fuzz"], handlers={"Echo": Echo, "Count": Count},
                         templates=[template_doc("fuzz", "echo", "1.0.0", steps=steps, schema={"type": "object"})])
    return FakeEntryPoint.of("fuzz", plugin, dist="tasker-fuzz")


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    db = (tmp_path_factory.mktemp("fuzz") / "t.db" if request.param == "sqlite"
          else request.getfixturevalue("postgres_module_url"))
    with live_server(make_host(db, entry_points=[fuzz_entry_point()]), run_worker=False) as live:
        yield live


# -- contexts as Python values, serialised several ways --------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates and NUL included
TEXT = st.text(ANY_CHAR, max_size=12) | st.sampled_from(["\ud800", "a\x00b", "ключ", "😀", "\u2028", ""])
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10 ** 18, max_value=10 ** 40)
           | st.floats() | st.sampled_from([1e308, -1e308, 5e-324, float("inf"), float("nan")]) | TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                      max_leaves=20)
DEEP = st.integers(min_value=1, max_value=90).map(lambda n: json.loads("[" * n + "]" * n))


@st.composite
def python_bodies(draw: Any) -> bytes:
    context = draw(st.dictionaries(TEXT, VALUES | DEEP, max_size=6))
    text = json.dumps({"namespace": "fuzz", "name": "echo", "context": context}, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")  # raw lone surrogates: bytes that are not UTF-8


# -- contexts of storable values only (the 201 path gets its share of cases) --------------------------

CLEAN_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
CLEAN_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10 ** 60), max_value=10 ** 60)
                 | st.floats(allow_nan=False, allow_infinity=False) | CLEAN_TEXT)
CLEAN_VALUES = st.recursive(CLEAN_SCALARS, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(CLEAN_TEXT, inner, max_size=4), max_leaves=20)
CLEAN_DEEP = st.integers(min_value=1, max_value=63).map(lambda n: json.loads("[" * n + "]" * n))


@st.composite
def clean_bodies(draw: Any) -> bytes:
    context = draw(st.dictionaries(CLEAN_TEXT, CLEAN_VALUES | CLEAN_DEEP, max_size=6))
    text = json.dumps({"namespace": "fuzz", "name": "echo", "context": context}, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8")


# -- contexts as raw JSON text ---------------------------------------------------------------------

RAW_STRINGS = st.sampled_from([r'"\ud800"', r'"\udfff"', r'"\udc00\ud800"', r'"\ud83d\ude00"', r'"\u0000"',
                               r'"a\u0000b"', r'"\\u0000"', '"ü"', r'"\u2028"', '""', '"key"'])
RAW_SCALARS = (st.sampled_from(["1e400", "-1e400", "1E+309", "1e-400", "-0", "0.1", "1" + "0" * 400,
                                "-" + "9" * 300 + ".5e10", "true", "false", "null", "NaN", "Infinity"])
               | RAW_STRINGS | SCALARS.map(lambda v: json.dumps(v)))
RAW_KEYS = RAW_STRINGS | TEXT.map(lambda t: json.dumps(t))


def raw_containers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
    objects = st.lists(st.tuples(RAW_KEYS, inner), max_size=4).map(
        lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}")
    return arrays | objects


RAW_VALUES = st.recursive(RAW_SCALARS, raw_containers, max_leaves=20) | st.integers(1, 100).map(
    lambda n: "[" * n + "]" * n)


@st.composite
def raw_bodies(draw: Any) -> bytes:
    pairs = draw(st.lists(st.tuples(RAW_KEYS, RAW_VALUES), max_size=6))
    context = "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
    return ('{"namespace": "fuzz", "name": "echo", "context": ' + context + "}").encode("utf-8", "surrogatepass")


# -- the property ----------------------------------------------------------------------------------


def check_one(live: Live, body: bytes) -> str:
    before = live.rows()
    response = live.client.post("/tasks", content=body,
                                headers=live.auth("admin", **{"Content-Type": "application/json"}))
    assert response.status_code < 500, (body[:300], response.text)
    if response.status_code >= 400:
        assert live.rows() == before, f"a refused request wrote something: {body[:300]!r}"
        error = response.json()["error"]
        assert error in {"malformed_json", "invalid_request"}, response.text
        return f"{response.status_code} {error}"
    assert response.status_code == 201, response.text
    anyio.run(live.host.engine.run_until_idle)
    task = live.host.store.get_task(response.json()["id"])
    assert task.status is TaskState.COMPLETE, (body[:300], task.error)
    assert task.steps[0].results == task.context and task.steps[1].results == {"keys": len(task.context)}
    return "201, completed"


@settings(max_examples=CASES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=python_bodies() | raw_bodies() | clean_bodies())
def test_200_fuzzed_creates_complete_or_are_refused_writing_nothing_never_5xx(fuzz_live: Live, body: bytes) -> None:
    event(f"HTTP {check_one(fuzz_live, body)}")  # (pytest --hypothesis-show-statistics)
