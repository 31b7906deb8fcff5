"""The API's JSON response: Starlette's, which writes strict JSON as UTF-8, with a fallback for
values read back from rows written before the value rule (:mod:`tasker_host.values`): SQLite
kept ``Infinity``/``NaN`` and escaped lone surrogates, which strict JSON and UTF-8 cannot carry.
Those documents are rendered through :func:`~tasker_host.values.printable` (non-finite numbers as
``null``, bad characters as U+FFFD) instead of failing the request. Other documents pay nothing."""

from __future__ import annotations

from typing import Any

from starlette import responses

from tasker_host.values import printable


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (ValueError, UnicodeEncodeError):  # out-of-range floats; lone surrogates
            return super().render(printable(content))
