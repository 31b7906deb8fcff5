"""The value rule (tasker_host.values): what can be stored, every problem with its path; free text
made storable and bounded; values of old rows made printable. Also the failure texts built from
exceptions (engine/retry.py) that rely on it."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from datetime import date
from decimal import Decimal

import pytest

from tasker_host.engine.retry import NAME_LIMIT, RetryPolicy, error_doc, judge
from tasker_host.errors import InvalidValueError, PermanentError, RetryableError
from tasker_host.models import StepState
from tasker_host.values import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_PROBLEMS,
    MESSAGE_LIMIT,
    key_path,
    printable,
    require_storable,
    storable_text,
    value_problems,
)
from tests.value_support import strictly_storable


def paths(value, root="context"):
    return [p.path for p in value_problems(value, root)]


def nested(levels: int):
    """``levels`` lists, one inside the other."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


class Color(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


@pytest.mark.parametrize("value", [
    {}, [], "", 0, -1, 1.5, True, False, None, "ü€😀 non-ASCII", {"ключ": "значение", "😀": ["ok"]},
    {"items": [{"name": "a", "qty": 2, "price": 1.25}], "flag": None}, (1, 2, 3), 10 ** 30, -(10 ** 30),
    1e308, 5e-324, 1e-400,  # (1e-400 parses as 0.0: no overflow)
    OrderedDict(a=1), Color.RED, Size.BIG, nested(MAX_DEPTH), int("9" * MAX_INT_DIGITS),
])
def test_storable_values_have_no_problems(value):
    assert value_problems(value, "context") == []
    require_storable(value, "context", "context")  # does not raise


@pytest.mark.parametrize(("value", "path", "words"), [
    ("\ud800", "context", "lone surrogate (\\ud800)"),
    ("ok\udfff", "context", "lone surrogate (\\udfff)"),
    ("a\x00b", "context", "NUL"),
    ({"k": "\x00"}, "context.k", "NUL"),
    ({"k\x00": 1}, 'context["k\\u0000"]', "key contains a NUL"),
    ({"\udc80": 1}, 'context["\\udc80"]', "key contains a lone surrogate"),
    ({1: "a"}, "context[<int 1>]", "object key 1 is int, not a string"),
    ({None: "a"}, "context[<NoneType None>]", "not a string"),
    (float("nan"), "context", "NaN"),
    ({"x": float("inf")}, "context.x", "Infinity"),
    ({"x": [float("-inf")]}, "context.x[0]", "-Infinity"),
    ({"x": json.loads("1e400")}, "context.x", "1e400"),
    ({"n": 10 ** MAX_INT_DIGITS}, "context.n", f"more than {MAX_INT_DIGITS} digits"),
    ({"s": {1, 2}}, "context.s", "set is not a JSON value"),
    ({"b": b"bytes"}, "context.b", "bytes is not a JSON value"),
    ({"d": date(2024, 1, 1)}, "context.d", "date is not a JSON value"),
    ({"m": Decimal("1.5")}, "context.m", "Decimal is not a JSON value"),
    ({"o": object()}, "context.o", "object is not a JSON value"),
    ({"deep": nested(MAX_DEPTH)}, "context.deep" + "[0]" * (MAX_DEPTH - 1), f"more than {MAX_DEPTH} levels"),
])
def test_each_kind_of_problem_is_reported_at_its_path(value, path, words):
    problems = value_problems(value, "context")
    assert [p.path for p in problems] == [path]
    assert words in problems[0].message


def test_every_problem_is_listed_at_once_in_walk_order():
    value = {"payment_id": "\ud800", "items": [{"name": "ok"}, {"name": "x\x00"}, {"name": float("nan")}],
             "refund_amount": json.loads("1e400"), "fine": "yes", "\x00": {"set": set()}}
    assert paths(value) == ["context.payment_id", "context.items[1].name", "context.items[2].name",
                            "context.refund_amount", 'context["\\u0000"]', 'context["\\u0000"].set']


def test_paths_start_at_the_given_root_or_at_the_first_key():
    assert paths({"a": {"b": ["\x00"]}}, "task.context") == ["task.context.a.b[0]"]
    assert paths({"a": {"b": ["\x00"]}}, "") == ["a.b[0]"]
    assert paths("\x00", "name") == ["name"]
    assert key_path("", "plain") == "plain" and key_path("ctx", "ünï") == "ctx.ünï"


def test_a_path_is_always_storable_itself():
    for problem in value_problems({"\ud800\x00": {"\udfff": ["\x00"]}, 7: {b"k": 1}}, "context"):
        assert strictly_storable(problem.as_dict())


def test_problems_are_capped_and_the_rest_counted():
    problems = value_problems(["\x00"] * (MAX_PROBLEMS + 50), "results")
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].path == "results" and problems[-1].message == "50 more problem(s) not listed"
    assert problems[MAX_PROBLEMS - 1].path == f"results[{MAX_PROBLEMS - 1}]"


def test_a_cycle_is_refused_by_the_depth_bound_not_a_recursion_error():
    cycle: dict = {}
    cycle["self"] = cycle
    assert "levels deep" in value_problems(cycle, "results")[0].message


def test_require_storable_raises_a_request_error_listing_every_path():
    with pytest.raises(InvalidValueError) as caught:
        require_storable({"a": "\x00", "b": math.nan}, "context", "context")
    assert [p.path for p in caught.value.problems] == ["context.a", "context.b"]
    message = str(caught.value)
    assert message.startswith("context cannot be stored (2 problem(s)):")
    assert "  - context.a: string contains a NUL" in message and "  - context.b: NaN" in message


# -- free text --------------------------------------------------------------------------------------


def test_storable_text_replaces_nul_and_lone_surrogates():
    assert storable_text("a\x00b\ud800c\udfff") == "a\ufffdb\ufffdc\ufffd"
    assert storable_text("clean ü 😀") == "clean ü 😀"


def test_storable_text_keeps_head_and_tail_around_a_marker():
    text = "H" * 10_000 + "middle" + "T" * 10_000
    cut = storable_text(text, 1000)
    assert len(cut) <= 1000
    assert cut.startswith("H" * 400) and cut.endswith("T" * 400)
    assert "characters cut" in cut and "middle" not in cut
    kept = cut.count("H") + cut.count("T")
    assert f"[... {len(text) - kept} characters cut ...]" in cut


def test_storable_text_of_a_megabyte_with_bad_characters_is_bounded_and_clean():
    text = ("\x00\ud800" + "x" * 98) * 10_000
    cut = storable_text(text)
    assert len(cut) <= MESSAGE_LIMIT and strictly_storable(cut)
    assert storable_text("x" * 50, 3) == "xxx"  # a limit too small for the marker: just the head


def test_printable_makes_old_rows_strict_json():
    legacy = {"x": math.inf, "y": [-math.inf, math.nan, 1.5], "s": "a\ud800", "n": None, "k": {"ok": True}}
    shown = printable(legacy)
    assert shown == {"x": None, "y": [None, None, 1.5], "s": "a\ufffd", "n": None, "k": {"ok": True}}
    assert strictly_storable(shown)


# -- failure texts (engine/retry.py) ---------------------------------------------------------------


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_error_doc_is_storable_and_bounded_whatever_the_exception_holds():
    doc = error_doc(RuntimeError("\ud800 and \x00 " + "x" * 1_000_000))
    assert doc["type"] == "RuntimeError" and doc["kind"] == "retryable"
    assert len(doc["message"]) <= MESSAGE_LIMIT and strictly_storable(doc)
    assert doc["message"].startswith("\ufffd and \ufffd ")


def test_error_doc_of_an_exception_whose_str_raises():
    doc = error_doc(Unprintable())
    assert doc["message"] == "<Unprintable whose message cannot be read>"
    long_named = type("Long" * 200, (PermanentError,), {})("boom")
    doc = error_doc(long_named)
    assert len(doc["type"]) <= NAME_LIMIT and doc["type"].startswith("LongLong")
    assert (doc["kind"], doc["message"]) == ("permanent", "boom")


@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0])
def test_retryable_error_refuses_a_retry_after_that_is_not_a_finite_wait(value):
    with pytest.raises(ValueError, match="finite number >= 0"):
        RetryableError("later", retry_after=value)


@pytest.mark.parametrize("value", [math.inf, math.nan, "soon", object()])
def test_a_retry_after_set_to_anything_falls_back_to_the_backoff(value):
    exc = RetryableError("later")
    exc.retry_after = value  # a handler may do this after construction
    verdict = judge(exc, attempt=1, retryable=True, retry_limit=3, policy=RetryPolicy(jitter=0.0))
    assert verdict.state is StepState.WAITING_RETRY and verdict.delay == 1.0


def test_subclasses_of_json_types_are_checked_as_what_they_extend():
    class Text(str):
        pass

    class Number(float):
        pass

    assert paths(OrderedDict(a=Text("x\x00"), b=Number("nan"), c=[Text("ok")])) == ["context.a", "context.b"]
    assert paths({Text("k\ud800"): 1}) == ['context["k\\ud800"]']
