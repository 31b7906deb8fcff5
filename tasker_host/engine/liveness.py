"""Which process a runner is, and whether a registered worker's process has ended — a question
only the worker's own host can answer.

A worker registers its host name, its pid and, on Linux, two more facts:

* ``pid_scope``: the boot id and the pid namespace. Pids mean something only within one pid
  namespace of one boot: containers sharing a host name (host networking) or a machine that
  rebooted must not judge each other's pids.
* ``pid_started``: the process's start time in clock ticks since boot (``/proc/<pid>/stat``). A
  pid that exists again but started at another tick is another process: the worker's pid was
  reused (a restarted container's main process gets the same pid every time).

A worker is *gone* when it registered from this host (same host name and scope) and its pid no
longer exists or now belongs to another process. Elsewhere (other platforms) only the host name
and the pid are compared. Anything that cannot be read means "not known to be gone": only the
heartbeat timeout judges those workers.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tasker_host.store.base import NewWorker, WorkerRecord

_PROC = Path("/proc")


class ProcessTable:
    """This host's view of processes (host name and pid scope read once)."""

    def __init__(self, proc: Path = _PROC) -> None:
        self._proc = proc
        self.hostname = socket.gethostname()
        self.pid_scope = self._scope()

    def this_process(self, worker_id: str, dead_after: float) -> NewWorker:
        """The registration of a runner of this process."""
        pid = os.getpid()
        return NewWorker(worker_id, self.hostname, pid, dead_after, self.pid_scope, self.started(pid))

    def gone(self, worker: WorkerRecord) -> bool:
        """True only when ``worker``'s process is known to have ended (see the module docstring)."""
        if worker.hostname != self.hostname or worker.pid_scope != self.pid_scope or worker.pid <= 0:
            return False
        try:
            os.kill(worker.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # it exists (another user's)
        if worker.pid_started is None:
            return False
        started = self.started(worker.pid)
        return started is not None and started != worker.pid_started

    def started(self, pid: int) -> int | None:
        """When process ``pid`` started, in clock ticks since boot (Linux), or None."""
        try:
            stat = (self._proc / str(pid) / "stat").read_text()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses; starttime is the
            # 22nd field, the 20th after the closing parenthesis
            return int(stat[stat.rindex(")") + 2:].split()[19])
        except (OSError, ValueError, IndexError):
            return None

    def _scope(self) -> str | None:
        try:
            boot = (self._proc / "sys/kernel/random/boot_id").read_text().strip()
            namespace = os.readlink(self._proc / "self/ns/pid")
        except OSError:
            return None
        return f"{boot}/{namespace}"
