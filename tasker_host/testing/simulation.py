"""Simulated services for demos and tests: fault plans and deterministic answers.

This is a test double, not part of the production SDK: the host never reads a fault plan. The
demo plugins in ``plugins/`` give their handlers *simulated* services built here, so the whole
host can be demonstrated and tested without a payment gateway or a ticketing system; a team
with real services gives its handlers real clients and replaces them in tests.

A **fault plan** maps a step name to the outcomes of its successive attempts::

    {"process_gateway_refund": ["unavailable", "ok"]}  # attempt 1 fails, attempt 2 succeeds

Attempts past the end of the list are ``"ok"``; a bare string instead of a list applies to every
attempt. :meth:`FaultPlan.fault_for` reads it when a simulated service is made for a step, from
(first match wins):

1. the task context key ``simulate`` (keys are step names of this task), then
2. the environment variable ``TASKER_SIMULATE``: the same mapping as JSON, keyed by
   ``"<namespace>.<step_name>"``, e.g. ``{"payments.process_gateway_refund": ["unavailable"]}``.

Outcomes: ``ok``; ``unavailable`` and ``timeout`` (the service raises
:class:`~tasker_host.ServiceUnavailable`: retried); ``auth`` and ``not_found`` (it raises
:class:`~tasker_host.ServiceRejected`: permanent); ``declined`` (it answers with that status:
permanent for a :class:`~tasker_host.FourPhaseHandler`) and ``unknown`` (it answers with a status
nobody knows: retried); ``slow:<seconds>`` (it answers normally after the delay). ``timeout``
sleeps for twice the step's ``timeout_seconds`` (default 1) so the engine's step timeout fires
first. A team may add answering outcomes of its own (:meth:`FaultPlan.answering_also`). A
malformed plan is a :class:`~tasker_host.PermanentError` saying where it came from.

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
from datetime import UTC, datetime
from typing import Any, Self

from anyio import sleep

from tasker_host.context import StepContext
from tasker_host.errors import PermanentError, ServiceRejected, ServiceUnavailable

__all__ = [
    "ANSWERING",
    "CONTEXT_KEY",
    "DEFAULT_PLAN",
    "ENV_VAR",
    "Fault",
    "FaultPlan",
    "SimulatedService",
    "TaskerApi",
    "digest",
    "now_iso",
    "record_simulated_sleeps",
]

CONTEXT_KEY = "simulate"
ENV_VAR = "TASKER_SIMULATE"
RAISING = {  # outcome -> (typed error, message) the simulated service raises
    "unavailable": (ServiceUnavailable, "{service} unavailable"),
    "auth": (ServiceRejected, "{service} authentication failed"),
    "not_found": (ServiceRejected, "{service}: record not found"),
}
ANSWERING = frozenset({"declined", "unknown"})  # the service answers with this status
SLOW = re.compile(r"slow:(\d+(?:\.\d+)?)")
_FIXED = ("ok", "timeout", *RAISING)  # outcomes whose effect is not an answered status


def digest(*parts: Any) -> str:
    """A stable hex digest of ``parts``: derive simulated ids from the inputs (idempotent calls)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def now_iso() -> str:
    """The current UTC time, to the second, in ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Fault:
    """The simulated outcome of one attempt of one step.

    ``answering``: the outcomes :meth:`act_out` returns as the status the service answers with.
    """

    outcome: str = "ok"
    timeout_seconds: float = 1.0
    answering: frozenset[str] = field(default=ANSWERING, repr=False)

    async def act_out(self, service: str) -> str | None:
        """Play the outcome at the start of a call to ``service``.

        Sleeps and/or raises :class:`~tasker_host.ServiceUnavailable` /
        :class:`~tasker_host.ServiceRejected`, or returns the status the service must answer with
        instead of its normal one (``None``: answer normally).
        """
        slow = SLOW.fullmatch(self.outcome)
        if slow:
            await sleep(float(slow.group(1)))
        elif self.outcome == "timeout":
            await sleep(self.timeout_seconds * 2)
            raise ServiceUnavailable(f"{service} timeout (simulated)")
        elif self.outcome in RAISING:
            error, message = RAISING[self.outcome]
            raise error(message.format(service=service) + " (simulated)")
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

    def fault_for(self, ctx: StepContext) -> Fault:
        """The :class:`Fault` of the current attempt of ``ctx``'s step (logged unless ``ok``)."""
        timeout = float(ctx.config.get("timeout_seconds", 1))
        fault = Fault(self.outcome_for(ctx), timeout, self.answering)
        if fault.outcome != "ok":
            ctx.log.info("simulating %r on attempt %d of %s", fault.outcome, ctx.attempt, ctx.step_name)
        return fault

    def outcome_for(self, ctx: StepContext) -> str:
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
    status>``. :meth:`for_step` makes one for a step's current attempt.
    """

    name = "Service"

    def __init__(self, fault: Fault | None = None):
        self.fault = fault or Fault()

    @classmethod
    def for_step(cls, ctx: StepContext, plan: FaultPlan = DEFAULT_PLAN) -> Self:
        """The service as the fault plan (``plan``) has it behave for ``ctx``'s current attempt."""
        return cls(plan.fault_for(ctx))

    async def begin(self, service: str | None = None) -> str | None:
        """Play the attempt's fault as a call to ``service`` (default :attr:`name`): sleep and/or
        raise, or return the status to answer with."""
        return await self.fault.act_out(service or self.name)


class TaskerApi(SimulatedService):
    """The way to another namespace's workflows (``ctx.invoke``), as far as faults go: a handler
    that delegates calls :meth:`reach` first, which plays the attempt's fault as a call to
    ``Tasker <namespace> API``."""

    name = "Tasker API"

    async def reach(self, namespace: str) -> str | None:
        """Play the fault: sleep and/or raise, or return the status to answer with instead."""
        return await self.begin(f"Tasker {namespace} API")


def record_simulated_sleeps(monkeypatch: Any) -> list[float]:
    """Make this module record its delays instead of sleeping, and ignore any
    ``TASKER_SIMULATE`` of the environment; returns the list of recorded delays (seconds).

    ``monkeypatch`` is pytest's fixture, so everything is undone after the test (the pytest
    plugin's ``simulated_sleeps`` fixture does this).
    """
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(f"{__name__}.sleep", fake_sleep)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return recorded


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
