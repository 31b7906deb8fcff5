"""Failure injection for the Customer Success team's simulated services.

This module is the only place the fault plan is read. A fault plan maps a step name to the
outcomes of its successive attempts::

    {"validate_refund_request": ["unavailable", "ok"]}  # attempt 1 fails, attempt 2 succeeds

Attempts past the end of the list are ``"ok"``; a bare string instead of a list applies to every
attempt. The plan is read each time a step runs, from (first match wins):

1. the task context key ``simulate`` (keys are step names of this task), then
2. the environment variable ``TASKER_SIMULATE``: the same mapping as JSON, keyed by
   ``"<namespace>.<step_name>"``, e.g.
   ``{"customer_success.validate_refund_request": ["unavailable"]}``.

Outcomes: ``ok``; ``unavailable`` and ``timeout`` (retryable); ``auth``, ``not_found``,
``declined`` and ``closed`` (permanent; ``closed``: the service reports the ticket closed);
``unknown`` (the service answers with a status nobody knows: retryable); ``slow:<seconds>``
(answers normally after the delay). ``timeout`` sleeps for twice the step's ``timeout_seconds``
(default 1) so the engine's step timeout fires first. A malformed plan is a
:class:`tasker_host.PermanentError` saying where it came from.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anyio import sleep

from tasker_host import PermanentError

CONTEXT_KEY = "simulate"
ENV_VAR = "TASKER_SIMULATE"
RAISING = {  # outcome -> message of the ServiceError the simulated service raises
    "unavailable": "{service} unavailable",
    "auth": "{service} authentication failed",
    "not_found": "{service}: record not found",
}
ANSWERING = frozenset({"declined", "closed", "unknown"})  # the service answers with this status
SLOW = re.compile(r"slow:(\d+(?:\.\d+)?)")
OUTCOMES = ("ok", "timeout", *RAISING, *sorted(ANSWERING), "slow:<seconds>")


class ServiceError(Exception):
    """A simulated service call failed; handlers classify it by its message."""


@dataclass(frozen=True, slots=True)
class Fault:
    """The simulated outcome of one attempt of one step."""

    outcome: str = "ok"
    timeout_seconds: float = 1.0

    @classmethod
    def for_step(cls, ctx: Any) -> Fault:
        """The outcome the plan gives the current attempt of ``ctx``'s step."""
        return cls(_outcome_for(ctx), float(ctx.config.get("timeout_seconds", 1)))

    async def act_out(self, service: str) -> str | None:
        """Play the outcome at the start of a call to ``service``.

        Sleeps and/or raises :class:`ServiceError`, or returns the status the service must answer
        with instead of its normal one (``None``: answer normally).
        """
        slow = SLOW.fullmatch(self.outcome)
        if slow:
            await sleep(float(slow.group(1)))
        elif self.outcome == "timeout":
            await sleep(self.timeout_seconds * 2)
            raise ServiceError(f"{service} timeout (simulated)")
        elif self.outcome in RAISING:
            raise ServiceError(RAISING[self.outcome].format(service=service) + " (simulated)")
        return self.outcome if self.outcome in ANSWERING else None


def _outcome_for(ctx: Any) -> str:
    context_plan = _mapping(ctx.task.context.get(CONTEXT_KEY), f"context key {CONTEXT_KEY!r}")
    if ctx.step_name in context_plan:
        where = f"{CONTEXT_KEY}[{ctx.step_name!r}]"
        return _pick(context_plan[ctx.step_name], where, ctx.attempt)
    key = f"{ctx.task.namespace}.{ctx.step_name}"
    env_plan = _mapping(_env_plan(), f"${ENV_VAR}")
    return _pick(env_plan[key], f"${ENV_VAR}[{key!r}]", ctx.attempt) if key in env_plan else "ok"


def _env_plan() -> Any:
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise PermanentError(f"invalid fault plan in ${ENV_VAR}: not JSON ({exc})") from exc


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PermanentError(f"invalid fault plan in {where}: expected a mapping of step to outcomes")
    return value


def _pick(value: Any, where: str, attempt: int) -> str:
    outcomes = [value] * attempt if isinstance(value, str) else value
    if not isinstance(outcomes, (list, tuple)):
        raise PermanentError(f"invalid fault plan in {where}: expected a list of outcomes")
    unknown = [o for o in outcomes if not _known(o)]
    if unknown:
        raise PermanentError(
            f"invalid fault plan in {where}: unknown outcome(s) {unknown}; "
            f"expected {', '.join(OUTCOMES)}"
        )
    return outcomes[attempt - 1] if 0 < attempt <= len(outcomes) else "ok"


def _known(outcome: Any) -> bool:
    if not isinstance(outcome, str):
        return False
    return outcome in ("ok", "timeout", *RAISING, *ANSWERING) or bool(SLOW.fullmatch(outcome))
