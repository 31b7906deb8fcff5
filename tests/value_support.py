"""An oracle for "storable", independent of tasker_host.values (which the tests check)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def strictly_storable(value: Any) -> bool:
    """What both databases need: strict JSON (no NaN / Infinity; raises otherwise), UTF-8 text
    (raises on lone surrogates) without NUL."""
    json.dumps(value, allow_nan=False)
    for text in _texts(value):
        text.encode("utf-8")
        if "\x00" in text:
            return False
    return True


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, str):
        yield value
