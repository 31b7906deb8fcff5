"""Step log lines: what handlers write through ``ctx.log``, stored with the attempt that wrote them.

A runner captures at most :data:`MAX_LINES` lines and :data:`MAX_BYTES` of text per attempt
(:mod:`tasker_host.engine.step_log`) and hands them to the store on the step's
:class:`~tasker_host.store.base.StepOutcome`; the store writes them in the transaction that records
the outcome (only for outcomes it applies). ``Store.step_logs`` reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_LINES = 200  # per attempt; later lines are counted and dropped (one marker line says how many)
MAX_BYTES = 64 * 1024  # per attempt, of UTF-8 message text
LINE_LIMIT = 4 * 1024  # characters of one message (longer ones keep head and tail)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line an attempt wrote (on its way to the store: the outcome knows step and attempt)."""

    at: float
    level: str  # "debug", "info", "warning", "error", "critical"
    message: str


@dataclass(frozen=True, slots=True)
class StepLogEntry:
    """A stored line: of which step and attempt, its position (``seq``) in that attempt."""

    step: str
    attempt: int
    seq: int
    at: float
    level: str
    message: str


def entries(step: str, attempt: int, lines: Sequence[LogLine]) -> list[StepLogEntry]:
    return [StepLogEntry(step, attempt, seq, line.at, line.level, line.message) for seq, line in enumerate(lines)]
