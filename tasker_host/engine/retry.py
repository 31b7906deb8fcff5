"""Retry rules: how a failure is classified and when the next attempt may run."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tasker_host.errors import PermanentError, RetryableError
from tasker_host.models import StepState
from tasker_host.values import storable_text

NAME_LIMIT = 200  # characters kept of an exception's class name


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and a cap: ``base * factor**(attempt-1)``, ±``jitter``."""

    base_seconds: float = 1.0
    factor: float = 2.0
    cap_seconds: float = 300.0
    jitter: float = 0.1
    rng: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None, base: float | None = None) -> float:
        if (wait := finite(retry_after)) is not None:
            return max(0.0, wait)
        raw = min(self.cap_seconds, (base if base is not None else self.base_seconds) * self.factor ** (attempt - 1))
        spread = raw * self.jitter * (2 * self.rng() - 1)
        return max(0.0, min(self.cap_seconds, raw + spread))


@dataclass(frozen=True, slots=True)
class Verdict:
    state: StepState  # WAITING_RETRY or ERROR
    delay: float | None
    reason: str


def max_attempts(retryable: bool, retry_limit: int) -> int:
    """The first attempt always runs; ``default_retryable: false`` means exactly one."""
    return max(1, retry_limit) if retryable else 1


def judge(exc: BaseException, *, attempt: int, retryable: bool, retry_limit: int,
          policy: RetryPolicy, base_delay: float | None = None) -> Verdict:
    """Decide what a failed attempt leads to."""
    if isinstance(exc, PermanentError):
        return Verdict(StepState.ERROR, None, "permanent error")
    limit = max_attempts(retryable, retry_limit)
    if attempt >= limit:
        why = "not retryable" if not retryable else f"retries exhausted ({attempt}/{limit} attempts)"
        return Verdict(StepState.ERROR, None, why)
    retry_after = getattr(exc, "retry_after", None) if isinstance(exc, RetryableError) else None
    delay = policy.delay(attempt, retry_after, base_delay)
    return Verdict(StepState.WAITING_RETRY, delay, f"attempt {attempt}/{limit} failed; retry in {delay:.2f}s")


def finite(value: object) -> float | None:
    """``value`` as a finite float, else None (a handler may set ``retry_after`` to anything)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def lost_attempts(attempt: int, *, retryable: bool, retry_limit: int) -> dict[str, Any] | None:
    """The error of a claim past the step's last attempt, or None. ``judge`` never schedules such
    an attempt: the earlier attempts ended with their workers (killed, or presumed dead), and
    those count against the limit, so a step that brings its worker down is not retried forever."""
    limit = max_attempts(retryable, retry_limit)
    if attempt <= limit:
        return None
    allowed = f"the retry limit {limit}" if retryable else "the single attempt of a non-retryable step"
    return {"type": "WorkerLost", "kind": "lost",
            "message": f"attempt {attempt} exceeds {allowed}: earlier attempts were lost with their workers"}


def retry_delay(handler_config: Mapping[str, Any]) -> float | None:
    """A step's ``retry_delay`` (handler config), when it is a number: the backoff's base."""
    value = handler_config.get("retry_delay")
    return finite(value) if value is not None else None


def error_doc(exc: BaseException) -> dict[str, Any]:
    """What is stored of a failure: made storable and bounded (``values.MESSAGE_LIMIT``), whatever
    the exception holds (NUL, lone surrogates, megabytes, a ``__str__`` that raises)."""
    kind = "timeout" if isinstance(exc, TimeoutError) else (
        "permanent" if isinstance(exc, PermanentError) else "retryable")
    name = storable_text(type(exc).__name__, NAME_LIMIT)
    return {"type": name, "kind": kind, "message": storable_text(_text_of(exc) or name)}


def _text_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not stop recording the failure
        return f"<{type(exc).__name__} whose message cannot be read>"
