"""The one rule for values tasker-host stores, applied where values enter (see docs/api.md).

A value is *storable* when both stores keep it and give it back unchanged:

* ``dict`` with ``str`` keys, ``list``/``tuple`` (stored as arrays), ``str``, ``int``, ``float``,
  ``bool``, ``None`` — nothing else (no sets, bytes, dates, Decimals, objects);
* strings and keys hold no NUL (PostgreSQL's JSONB and TEXT refuse it) and no lone surrogate
  (``"\\ud800"``: not Unicode, so not UTF-8; SQLite's driver cannot write it);
* numbers are finite: no NaN, no ±Infinity — ``1e400`` overflows to Infinity when parsed — and
  integers have at most 4000 digits (Python refuses to print longer ones);
* containers nest at most :data:`MAX_DEPTH` levels.

:func:`value_problems` lists every breach with its path (``context.items[2].name``, the API's
``problems`` style); :func:`require_storable` raises :class:`InvalidValueError` with them. Free
text (error messages, reasons) is not refused but made storable by :func:`storable_text`, and
values read back from old rows are made printable by :func:`printable`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from tasker_host.errors import InvalidValueError

MAX_DEPTH = 64
#: problems listed at most (the rest are counted): a refusal stays readable and small
MAX_PROBLEMS = 100
#: characters kept of an error message or a reason (head and tail, a marker in between)
MESSAGE_LIMIT = 8 * 1024
MAX_INT_DIGITS = 4000
_INT_BOUND = 10 ** MAX_INT_DIGITS
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_CUT = "\n[... {} characters cut ...]\n"


@dataclass(frozen=True, slots=True)
class ValueProblem:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}

    def describe(self) -> str:
        return f"{self.path or '(value)'}: {self.message}"


def key_path(path: str, key: Any) -> str:
    """``path`` extended by an object key: ``.key`` (``key`` at the root) for a storable string,
    else an escaped, ASCII ``["\\ud800"]`` / ``[<int 1>]``, so a path is always storable itself."""
    if isinstance(key, str):
        if _clean(key):
            return f"{path}.{key}" if path else key
        return f"{path}[{json.dumps(key)}]"
    return f"{path}[<{type(key).__name__} {_safe_repr(key)}>]"


def value_problems(value: Any, path: str = "") -> list[ValueProblem]:
    """Every reason ``value`` cannot be stored, each with its path under ``path`` (at most
    :data:`MAX_PROBLEMS`, then one that counts the rest). Empty: storable."""
    walk = _Walk(path)
    walk.value(value, 0)
    if walk.unlisted:
        walk.problems.append(ValueProblem(path, f"{walk.unlisted} more problem(s) not listed"))
    return walk.problems


def require_storable(value: Any, path: str, what: str) -> None:
    """Raise :class:`InvalidValueError` (every problem listed) unless ``value`` is storable."""
    if problems := value_problems(value, path):
        raise InvalidValueError(what, problems)


def storable_text(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` made storable: NUL and lone surrogates become U+FFFD; longer than ``limit``
    characters, its head and tail are kept around a marker saying how much was cut."""
    if len(text) > limit:
        keep = limit - len(_CUT.format(len(text)))  # (the count has at most that many digits)
        if keep <= 0:
            text = text[:max(0, limit)]
        else:
            head, tail = keep - keep // 2, keep // 2
            text = text[:head] + _CUT.format(len(text) - keep) + (text[-tail:] if tail else "")
    if not text.isascii() or "\x00" in text:
        text = _BAD_CHAR.sub("\ufffd", text)
    return text


def printable(value: Any) -> Any:
    """A copy of ``value`` a strict JSON encoder writes as UTF-8: for values read back from rows
    written before the rule (SQLite kept ``Infinity``, ``NaN`` and escaped lone surrogates).
    Non-finite numbers become ``None`` (as JavaScript's ``JSON.stringify`` does), bad strings are
    cleaned by :func:`storable_text` (not shortened), anything else not JSON becomes its text."""
    if isinstance(value, dict):
        return {_printable_key(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    if isinstance(value, str):
        return storable_text(value, len(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int)):
        return value
    return storable_text(_safe_repr(value), MESSAGE_LIMIT)


def _printable_key(key: Any) -> str:
    return storable_text(key if isinstance(key, str) else str(key), MESSAGE_LIMIT)


def _safe_repr(value: Any) -> str:
    try:
        return ascii(value)[:80]
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break the report
        return "?"


def _clean(text: str) -> bool:
    """No NUL, no lone surrogate (the common case, ASCII without NUL, costs no regex)."""
    return (text.isascii() and "\x00" not in text) or _BAD_CHAR.search(text) is None


def _text_problem(text: str, what: str) -> str:
    bad = _BAD_CHAR.search(text)
    if bad is None:
        return ""
    if bad.group() == "\x00":
        return f"{what} contains a NUL character (\\u0000), which cannot be stored"
    return f"{what} contains a lone surrogate (\\u{ord(bad.group()):04x}), which is not valid Unicode"


def _non_finite(value: float) -> str:
    if value != value:
        return "NaN is not a number JSON can store"
    return f"{'-' if value < 0 else ''}Infinity is not a number JSON can store (e.g. 1e400 overflows to it)"


@dataclass(frozen=True, slots=True)
class _OddKey:
    key: Any


_HERE = object()  # "the value itself", as opposed to a key or index under the current container


class _Walk:
    """A depth-first walk that renders a path only when it reports a problem there."""

    __slots__ = ("root", "trail", "problems", "unlisted")

    def __init__(self, root: str):
        self.root = root
        self.trail: list[Any] = []  # keys and indexes from the root to the current container
        self.problems: list[ValueProblem] = []
        self.unlisted = 0

    def report(self, message: str, last: Any = _HERE) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.unlisted += 1
            return
        path = self.root
        for part in self.trail if last is _HERE else (*self.trail, last):
            if type(part) is int:
                path = f"{path}[{part}]"
            else:
                path = key_path(path, part.key if type(part) is _OddKey else part)
        self.problems.append(ValueProblem(path, message))

    def value(self, value: Any, depth: int, last: Any = _HERE) -> None:
        kind = type(value)
        if kind is str:
            if not (value.isascii() and "\x00" not in value) and (why := _text_problem(value, "string")):
                self.report(why, last)
        elif kind is int:
            if not -_INT_BOUND < value < _INT_BOUND:
                self.report(f"integer has more than {MAX_INT_DIGITS} digits", last)
        elif kind is float:
            if not math.isfinite(value):
                self.report(_non_finite(value), last)
        elif kind is dict or kind is list or kind is tuple:
            self.container(value, kind is dict, depth, last)
        elif value is not None and kind is not bool:
            self.subclass(value, depth, last)

    def container(self, value: Any, is_object: bool, depth: int, last: Any) -> None:
        if depth >= MAX_DEPTH:
            self.report(f"nested more than {MAX_DEPTH} levels deep", last)
            return
        if last is not _HERE:
            self.trail.append(last)
        if is_object:
            self.object(value, depth + 1)
        else:
            self.array(value, depth + 1)
        if last is not _HERE:
            self.trail.pop()

    def object(self, doc: dict[Any, Any], depth: int) -> None:
        for key, item in doc.items():
            if type(key) is not str:
                key = _OddKey(key)  # an int key is not an array index in a path
                if not isinstance(key.key, str):
                    self.report(f"object key {_safe_repr(key.key)} is {type(key.key).__name__}, not a string", key)
                elif why := _text_problem(key.key, "key"):
                    self.report(why, key)
            elif not (key.isascii() and "\x00" not in key) and (why := _text_problem(key, "key")):
                self.report(why, key)
            kind = type(item)  # strings inline: most items are, and a call per item costs
            if kind is str:
                if not (item.isascii() and "\x00" not in item) and (why := _text_problem(item, "string")):
                    self.report(why, key)
            elif kind is not bool and item is not None:
                self.value(item, depth, key)

    def array(self, items: list[Any] | tuple[Any, ...], depth: int) -> None:
        for index, item in enumerate(items):
            kind = type(item)
            if kind is str:
                if not (item.isascii() and "\x00" not in item) and (why := _text_problem(item, "string")):
                    self.report(why, index)
            elif kind is not bool and item is not None:
                self.value(item, depth, index)

    def subclass(self, value: Any, depth: int, last: Any) -> None:
        """Subclasses of the JSON types (``OrderedDict``, ``StrEnum``, ``IntEnum`` ...) are
        checked as what they extend; anything else is not a JSON value."""
        if isinstance(value, (dict, list, tuple)):
            self.container(value, isinstance(value, dict), depth, last)
        elif isinstance(value, str):
            if why := _text_problem(value, "string"):
                self.report(why, last)
        elif isinstance(value, float):
            if not math.isfinite(value):
                self.report(_non_finite(value), last)
        elif isinstance(value, int):
            if not -_INT_BOUND < value < _INT_BOUND:
                self.report(f"integer has more than {MAX_INT_DIGITS} digits", last)
        else:
            self.report(f"{type(value).__name__} is not a JSON value (objects with string keys, arrays, "
                        "strings, numbers, booleans and null only)", last)
