"""Whether a registered worker's process has ended: judged only on its own host (and pid scope),
by its pid and, where the platform says, the process's start time."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tasker_host.engine.liveness import ProcessTable
from tasker_host.store.base import WorkerRecord

LINUX = Path("/proc/self/stat").exists()


def record(table: ProcessTable, pid: int, **changes: object) -> WorkerRecord:
    me = table.this_process("w", 6.0)
    found = WorkerRecord(me.id, me.hostname, pid, me.dead_after, 1.0, 1.0, me.pid_scope,
                         table.started(pid) if pid == os.getpid() else None)
    return replace(found, **changes)  # type: ignore[arg-type]


def exited_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(done.stdout)


def test_this_process_describes_itself() -> None:
    table = ProcessTable()
    me = table.this_process("host:1:abc", 6.0)
    assert (me.id, me.pid, me.dead_after) == ("host:1:abc", os.getpid(), 6.0)
    if LINUX:
        assert me.pid_scope and "pid:[" in me.pid_scope and isinstance(me.pid_started, int)
    assert not table.gone(record(table, os.getpid()))  # another runner of this very process


def test_a_pid_that_no_longer_exists_on_this_host_is_gone() -> None:
    table = ProcessTable()
    assert table.gone(record(table, exited_pid()))


def test_pids_are_judged_only_on_their_own_host_and_scope() -> None:
    table = ProcessTable()
    pid = exited_pid()
    assert not table.gone(record(table, pid, hostname="another-host"))
    assert not table.gone(record(table, pid, pid_scope="another-boot/pid:[1]"))
    assert not table.gone(record(table, 0)) and not table.gone(record(table, -1))


@pytest.mark.skipif(not LINUX, reason="process start times come from /proc")
def test_a_reused_pid_is_another_process() -> None:
    table = ProcessTable()
    mine = record(table, os.getpid())
    assert table.gone(replace(mine, pid_started=mine.pid_started - 1))  # same pid, started earlier: gone
    assert not table.gone(replace(mine, pid_started=None))  # not known: the heartbeat timeout judges


def test_without_proc_only_host_name_and_pid_count(tmp_path: Path) -> None:
    table = ProcessTable(proc=tmp_path)
    assert table.pid_scope is None and table.started(os.getpid()) is None
    me = table.this_process("w", 6.0)
    assert (me.pid_scope, me.pid_started) == (None, None)
    assert table.gone(record(table, exited_pid())) and not table.gone(record(table, os.getpid()))


def test_start_time_is_read_past_a_command_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    fields = ["S", *(str(n) for n in range(4, 22)), "987654", "4096"]  # fields 3 to 21, starttime (22), vsize
    (tmp_path / "4242" / "stat").write_text(f"4242 (odd (name) x) {' '.join(fields)}\n")
    assert ProcessTable(proc=tmp_path).started(4242) == 987654
