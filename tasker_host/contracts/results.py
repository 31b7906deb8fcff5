"""Checking a task's result against its template's ``result_schema``.

The result a caller gets from ``ctx.invoke`` is ``{step name: step results}``. It is checked
piece by piece: when a step completes, ``{step: results}`` is validated against the
``result_schema`` with its top-level ``required`` left out (the other steps have not finished
yet). The load-time rules (:mod:`tasker_host.contracts.template_checks`) allow only top-level
keywords that apply to one step at a time, so once every step has completed the whole result has
been checked: a completed task's result satisfies its ``result_schema``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from tasker_host.errors import ResultContractViolation
from tasker_host.models import plain_json
from tasker_host.schema_checks import quick_check


class ResultCheck:
    """The compiled ``result_schema`` of one template version."""

    def __init__(self, schema: Mapping[str, Any]):
        plain = plain_json(schema)  # a plain copy (a template's frozen mappings, or a snapshot's dicts)
        plain.pop("required", None)
        self._validator = validator_for(plain, default=Draft202012Validator)(plain)
        # the fast path the template loader uses: "valid" skips jsonschema (~20x faster)
        self._quick = quick_check(plain) if self._validator.__class__ is Draft202012Validator else None

    def problems(self, step: str, results: Any) -> list[tuple[str, str]]:
        """``(json path, message)`` for each violation by ``step``'s ``results``."""
        if self._quick is not None and self._quick({step: results}):
            return []
        errors = sorted(self._validator.iter_errors({step: results}),
                        key=lambda e: (list(map(str, e.absolute_path)), e.message))
        return [(_json_path(e.absolute_path), _short(e.message)) for e in errors]

    def check(self, full_name: str, step: str, results: Any) -> None:
        """Raise :class:`ResultContractViolation` listing every violation."""
        if problems := self.problems(step, results):
            raise ResultContractViolation(full_name, step, problems)


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."
