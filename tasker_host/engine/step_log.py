"""``ctx.log``: a logger bound to the task and step that also keeps what the attempt writes.

Every call (``ctx.log.info("charged %s", amount)``, ``.warning``, ``.exception`` ...) goes to
Python logging (logger ``tasker_host.step``, as before) AND, whatever the logging configuration,
into the attempt's bounded buffer: at most :data:`~tasker_host.store.step_logs.MAX_LINES` lines and
:data:`~tasker_host.store.step_logs.MAX_BYTES` of text; later lines are counted and dropped, and one
marker line says how many. Messages are made storable (``values.storable_text``). The runner puts
the lines on the step's outcome; the store keeps them with the attempt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from tasker_host.store.step_logs import LINE_LIMIT, MAX_BYTES, MAX_LINES, LogLine
from tasker_host.values import storable_text

step_logger = logging.getLogger("tasker_host.step")

DROPPED = "{n} more log lines dropped (at most {lines} lines and {kib} KiB are kept per attempt)"


class StepLogBuffer:
    """The lines one attempt wrote, bounded; thread-safe (sync handlers run in threads)."""

    def __init__(self, clock: Callable[[], float], *, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES):
        self._clock = clock
        self._max_lines, self._max_bytes = max_lines, max_bytes
        self._lines: list[LogLine] = []
        self._bytes = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def add(self, level: int, message: str) -> None:
        text = storable_text(message, LINE_LIMIT)
        size = len(text.encode("utf-8", "replace"))
        with self._lock:
            if self._dropped or len(self._lines) >= self._max_lines or self._bytes + size > self._max_bytes:
                self._dropped += 1  # once full, later lines are dropped too: the kept ones stay a prefix
                return
            self._bytes += size
            self._lines.append(LogLine(self._clock(), logging.getLevelName(level).lower(), text))

    def lines(self) -> tuple[LogLine, ...]:
        """What was kept, plus the marker line when some were dropped."""
        with self._lock:
            kept = tuple(self._lines)
            if not self._dropped:
                return kept
            marker = DROPPED.format(n=self._dropped, lines=self._max_lines, kib=self._max_bytes // 1024)
            return (*kept, LogLine(self._clock(), "warning", marker))


class StepLog(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: a :class:`logging.LoggerAdapter` (task and step ids in ``extra``) whose every
    call is also captured into the attempt's :class:`StepLogBuffer`."""

    def __init__(self, extra: Mapping[str, object], buffer: StepLogBuffer | None):
        # the fields also under "fields": what the host's log formatters print (--log-format)
        super().__init__(step_logger, {**extra, "fields": {k: v for k, v in extra.items() if v is not None}})
        self.buffer = buffer

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.buffer is not None:
            self.buffer.add(level, _text(msg, args))
        super().log(level, msg, *args, **kwargs)


def _text(msg: object, args: tuple[object, ...]) -> str:
    """The message as logging would render it (``msg % args``); never raises."""
    try:
        return str(msg) % args if args else str(msg)
    except Exception:  # noqa: BLE001 - a bad format string is the handler's bug, not the step's failure
        return " ".join([str(msg), *map(repr, args)])
