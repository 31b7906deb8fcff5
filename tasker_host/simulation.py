"""Simulated services for demos and tests (plugin SDK): fault plans and deterministic answers.

The team plugins in ``plugins/`` talk to *simulated* services, so the whole host can be
demonstrated and tested without a payment gateway or a ticketing system. This module is the one
place where the host reads a **fault plan**: a mapping of step name to the outcomes of its
successive attempts::

    {"process_gateway_refund": ["unavailable", "ok"]}  # attempt 1 fails, attempt 2 succeeds

Attempts past the end of the list are ``"ok"``; a bare string instead of a list applies to every
attempt. The plan is read each time a step runs, from (first match wins):

1. the task context key ``simulate`` (keys are step names of this task), then
2. the environment variable ``TASKER_SIMULATE``: the same mapping as JSON, keyed by
   ``"<namespace>.<step_name>"``, e.g. ``{"payments.process_gateway_refund": ["unavailable"]}``.

Outcomes: ``ok``; ``unavailable`` and ``timeout`` (the service raises a :class:`ServiceError`
that :class:`~tasker_host.FourPhaseHandler` classifies as retryable); ``auth`` and ``not_found``
(a :class:`ServiceError` classified as permanent); ``declined`` (the service answers with that
status: permanent) and ``unknown`` (it answers with a status nobody knows: retryable);
``slow:<seconds>`` (answers normally after the delay). ``timeout`` sleeps for twice the step's
``timeout_seconds`` (default 1) so the engine's step timeout fires first. A team may add answering
outcomes of its own (:meth:`FaultPlan.answering_also`). A malformed plan is a
:class:`tasker_host.PermanentError` saying where it came from.

A simulated service subclasses :class:`SimulatedService` and starts every call with
``status = await self.begin()``, which plays the attempt's :class:`Fault`: it sleeps and/or raises,
or returns the status to answer with instead of the normal one (``None``: answer normally).
:func:`digest` derives stable ids from the inputs, so a retried call gives the same answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from anyio import sleep

from tasker_host.errors import PermanentError

__all__ = [
    "ANSWERING",
    "CONTEXT_KEY",
    "DEFAULT_PLAN",
    "ENV_VAR",
    "Fault",
    "FaultPlan",
    "ServiceError",
    "SimulatedService",
    "digest",
    "now_iso",
]

CONTEXT_KEY = "simulate"
ENV_VAR = "TASKER_SIMULATE"
RAISING = {  # outcome -> message of the ServiceError the simulated service raises
    "unavailable": "{service} unavailable",
    "auth": "{service} authentication failed",
    "not_found": "{service}: record not found",
}
ANSWERING = frozenset({"declined", "unknown"})  # the service answers with this status
SLOW = re.compile(r"slow:(\d+(?:\.\d+)?)")
_FIXED = ("ok", "timeout", *RAISING)  # outcomes whose effect is not an answered status


class ServiceError(Exception):
    """A simulated service call failed; handlers classify it by its message."""


def digest(*parts: Any) -> str:
    """A stable hex digest of ``parts``: derive simulated ids from the inputs (idempotent calls)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def now_iso() -> str:
    """The current UTC time, to the second, in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Fault:
    """The simulated outcome of one attempt of one step.

    ``answering``: the outcomes :meth:`act_out` returns as the status the service answers with.
    """

    outcome: str = "ok"
    timeout_seconds: float = 1.0
    answering: frozenset[str] = field(default=ANSWERING, repr=False)

    @classmethod
    def for_step(cls, ctx: Any, plan: FaultPlan | None = None) -> Fault:
        """The outcome ``plan`` (default: the standard outcomes) gives the current attempt of
        ``ctx``'s step."""
        return (plan or DEFAULT_PLAN).fault_for(ctx)

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
        return self.outcome if self.outcome in self.answering else None


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Reads the fault plan of a step (see the module docstring).

    ``answering``: the outcomes with which the simulated service answers instead of failing
    (default ``declined`` and ``unknown``); a team adds its own with :meth:`answering_also`.
    """

    answering: frozenset[str] = ANSWERING

    def __post_init__(self) -> None:
        answering = frozenset(self.answering)
        clash = sorted(o for o in answering if o in _FIXED or SLOW.fullmatch(o))
        if clash:
            raise ValueError(f"answering outcomes may not redefine {clash}")
        object.__setattr__(self, "answering", answering)

    def answering_also(self, *statuses: str) -> FaultPlan:
        """This plan, with more statuses a simulated service may be told to answer with."""
        return FaultPlan(self.answering | frozenset(statuses))

    @property
    def outcomes(self) -> tuple[str, ...]:
        """Every outcome this plan accepts (``slow:<seconds>`` standing for the slow ones)."""
        return (*_FIXED, *sorted(self.answering), "slow:<seconds>")

    def knows(self, outcome: Any) -> bool:
        if not isinstance(outcome, str):
            return False
        return outcome in _FIXED or outcome in self.answering or bool(SLOW.fullmatch(outcome))

    def fault_for(self, ctx: Any) -> Fault:
        """The :class:`Fault` of the current attempt of ``ctx``'s step."""
        timeout = float(ctx.config.get("timeout_seconds", 1))
        return Fault(self.outcome_for(ctx), timeout, self.answering)

    def outcome_for(self, ctx: Any) -> str:
        """The outcome of the current attempt (``ctx.attempt``) of ``ctx``'s step."""
        context_plan = _mapping(ctx.task.context.get(CONTEXT_KEY), f"context key {CONTEXT_KEY!r}")
        if ctx.step_name in context_plan:
            where = f"{CONTEXT_KEY}[{ctx.step_name!r}]"
            return self._pick(context_plan[ctx.step_name], where, ctx.attempt)
        key = f"{ctx.task.namespace}.{ctx.step_name}"
        env_plan = _mapping(_env_plan(), f"${ENV_VAR}")
        return self._pick(env_plan[key], f"${ENV_VAR}[{key!r}]", ctx.attempt) if key in env_plan else "ok"

    def _pick(self, value: Any, where: str, attempt: int) -> str:
        outcomes = [value] * attempt if isinstance(value, str) else value
        if not isinstance(outcomes, (list, tuple)):
            raise PermanentError(f"invalid fault plan in {where}: expected a list of outcomes")
        unknown = [o for o in outcomes if not self.knows(o)]
        if unknown:
            raise PermanentError(
                f"invalid fault plan in {where}: unknown outcome(s) {unknown}; "
                f"expected {', '.join(self.outcomes)}"
            )
        return outcomes[attempt - 1] if 0 < attempt <= len(outcomes) else "ok"


DEFAULT_PLAN = FaultPlan()


class SimulatedService:
    """Base class of a simulated service; ``name`` appears in its error messages.

    Every call starts with ``status = await self.begin()`` and answers with ``status or <normal
    status>``.
    """

    name = "Service"

    def __init__(self, fault: Fault | None = None):
        self.fault = fault or Fault()

    async def begin(self) -> str | None:
        """Play the attempt's fault: sleep and/or raise, or return the status to answer with."""
        return await self.fault.act_out(self.name)


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
