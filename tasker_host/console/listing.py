"""The task list's filters, read from the URL (so a link is a saved view): every problem is
reported at once and nothing is queried for a bad filter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from tasker_host.models import TaskState
from tasker_host.store.base import TaskFilter
from tasker_host.values import value_problems

PAGE_SIZE = 50
FIELDS = ("namespace", "name", "version", "status", "since", "until", "correlation", "q")
MAX_TEXT = 200


@dataclass(frozen=True)
class ListQuery:
    values: dict[str, str] = field(default_factory=dict)  # the filters as given (non-empty only)
    after: str | None = None
    problems: tuple[str, ...] = ()

    def url(self, **changes: str | None) -> str:
        """``/ui/tasks`` with these filters (and ``changes``; None removes one)."""
        params = {**self.values, **({"after": self.after} if self.after else {})}
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        return "/ui/tasks" + (f"?{urlencode(params)}" if params else "")

    def task_filter(self, namespaces: list[str] | None, limit: int = PAGE_SIZE) -> TaskFilter:
        v = self.values
        return TaskFilter(namespaces=namespaces, name=v.get("name"), version=v.get("version"),
                          status=TaskState(v["status"]) if "status" in v else None,
                          created_after=_moment(v.get("since")), created_before=_moment(v.get("until")),
                          correlation_id=v.get("correlation"), context_text=v.get("q"), after_id=self.after,
                          limit=limit, newest_first=True)


def _moment(text: str | None) -> float | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    values = {k: params[k].strip() for k in FIELDS if params.get(k, "").strip()}
    problems = [f"{k}: {p.message}" for k, v in values.items() for p in value_problems(v)]
    problems += [f"{k}: longer than {MAX_TEXT} characters" for k, v in values.items() if len(v) > MAX_TEXT]
    if "status" in values and values["status"] not in {s.value for s in TaskState}:
        problems.append(f"status: {values['status']!r} is not one of {', '.join(s.value for s in TaskState)}")
    for key in ("since", "until"):
        if key in values:
            try:
                _moment(values[key])
            except ValueError:
                problems.append(f"{key}: {values[key]!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)")
    after = params.get("after") or None
    if after is not None and (value_problems(after) or len(after) > MAX_TEXT):
        problems.append("after: not a task id")
    return ListQuery(values, after, tuple(problems))
