"""Recovery after a worker dies: how long until the steps it was running run again.

    python bench/recovery_bench.py                          # SQLite: SIGKILL a `worker` mid-step, restart it
    python bench/recovery_bench.py --serve                  # the same with `serve` (API + engine in one process)
    python bench/recovery_bench.py --postgres               # PostgreSQL: a worker of "another host" dies, 2 live on
    python bench/recovery_bench.py --postgres --same-host   # ... a worker of this host dies, 2 live on

The plugin is ``recovery_plugin.py`` (one step whose first attempt sleeps for a minute), written
with a dist-info into a temporary directory on the processes' ``PYTHONPATH``. Leases keep their
default (60 s), so only the workers' heartbeats can explain a recovery within seconds.

* SQLite (a single-process host): per round, a fresh database with ``--tasks`` tasks; the host
  starts and claims them; once every step runs it is SIGKILLed and started again at once. The
  figures: restart -> every step claimed again (the steps' ``started_at``), split into the new
  process's start-up (until it prints that it runs) and the rest (registration, reaping its dead
  predecessor — its pid is gone — and the claim), and kill -> claimed again.
* PostgreSQL: per round, a fresh schema; the victim starts alone and claims ``--tasks`` steps,
  then two more workers start and register; the victim is SIGKILLed. The figure: kill -> every
  one of its steps claimed by a survivor. Without ``--same-host`` the victim reports another host
  name (set in its process before the CLI runs), so the survivors cannot check its pid and only
  its silence (4 missed heartbeats) gives it away: the cross-host case.

Every round checks that each step ran its second attempt, with a ``WorkerLost`` last error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from scale_bench import fresh_schema  # noqa: E402 - a sibling script (bench/ is on sys.path)

from tasker_host.host import build_host
from tasker_host.settings import HostSettings
from tasker_host.store.urls import normalize_url
from tasker_host.testing.entry_point_dir import write_plugin_dist

BENCH = Path(__file__).resolve().parent
TASKER_HOST = Path(sys.executable).with_name("tasker-host")
ELSEWHERE = ("import socket, sys; socket.gethostname = lambda: 'another-host'; "
             "from tasker_host.cli import main; sys.argv[0] = 'tasker-host'; main()")


# --- processes -----------------------------------------------------------------------------------
class Host:
    """A `tasker-host` process; ``ready_at``: when it printed that its runner runs (stderr)."""

    def __init__(self, args: list[str], env: dict[str, str], elsewhere: bool = False):
        command = [sys.executable, "-c", ELSEWHERE, *args] if elsewhere else [str(TASKER_HOST), *args]
        self.started_at = time.time()
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.ready_at: float | None = None
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if self.ready_at is None and (" running (" in line or "Application startup complete" in line):
                self.ready_at = time.time()

    def kill(self) -> float:
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        return at

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def host_args(serve: bool) -> list[str]:
    if serve:
        return ["serve", "--port", "0", "--log-level", "info"]
    return ["worker"]


def wait_for(check, timeout: float, what: str, hosts: list[Host]) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            tails = "\n".join(line for h in hosts for line in h.lines[-20:])
            raise RuntimeError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.01)
    return value


# --- the database --------------------------------------------------------------------------------
def create_tasks(url: str, n: int) -> list[str]:
    host = build_host(HostSettings(database_url=url))
    try:
        return [host.service.create_task("recovery", "slow").task.id for _ in range(n)]
    finally:
        host.close()


def steps(db: sa.Engine) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(sa.text("SELECT state, attempts, started_at, lease_owner, last_error FROM steps")))


def all_running(db: sa.Engine, n: int) -> bool:
    rows = steps(db)
    return len(rows) == n and all(r.state == "in_progress" and r.attempts == 1 for r in rows)


def all_taken_again(db: sa.Engine) -> list[Any] | None:
    rows = steps(db)
    return rows if rows and all(r.attempts >= 2 for r in rows) else None


def check_lost(rows: list[Any]) -> None:
    for r in rows:
        error = json.loads(r.last_error) if isinstance(r.last_error, str) else r.last_error
        if r.attempts != 2 or not error or error.get("type") != "WorkerLost":
            raise RuntimeError(f"unexpected step after recovery: {r}")


@contextmanager
def plugin_env(root: Path, url: str) -> Iterator[dict[str, str]]:
    source = (BENCH / "recovery_plugin.py").read_text(encoding="utf-8")
    site = write_plugin_dist(root / "site", "tasker-bench-recovery", "0.0.0", "recovery",
                             "tasker_bench_recovery:plugin", module_source={"tasker_bench_recovery.py": source})
    sys.path.insert(0, str(site))  # this process creates the tasks, so it discovers the plugin too
    try:
        yield {**os.environ, "TASKER_DATABASE_URL": url,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    finally:
        sys.path.remove(str(site))


# --- the two scenarios ---------------------------------------------------------------------------
def sqlite_round(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="recovery-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'tasker.db'}"
        with plugin_env(Path(tmp), url) as env:
            create_tasks(url, args.tasks)
            db = sa.create_engine(normalize_url(url))
            first = Host(host_args(args.serve), env)
            hosts = [first]
            try:
                wait_for(lambda: all_running(db, args.tasks), 60, "the first host to run every step", hosts)
                killed_at = first.kill()
                second = Host(host_args(args.serve), env)
                hosts.append(second)
                rows = wait_for(lambda: all_taken_again(db), 60, "the restarted host to take the steps", hosts)
                check_lost(rows)
                resumed = max(r.started_at for r in rows)
                ready = wait_for(lambda: second.ready_at, 10, "the start-up line", hosts)
            finally:
                for h in hosts:
                    h.stop()
                db.dispose()
    return {"restart_to_resumed_s": resumed - second.started_at, "startup_s": ready - second.started_at,
            "ready_to_resumed_s": resumed - ready, "kill_to_resumed_s": resumed - killed_at}


def postgres_round(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="recovery-") as tmp, fresh_schema() as url:
        with plugin_env(Path(tmp), url) as env:
            db = sa.create_engine(normalize_url(url))
            victim = Host(["worker"], env, elsewhere=not args.same_host)
            hosts = [victim]
            try:
                create_tasks(url, args.tasks)
                wait_for(lambda: all_running(db, args.tasks), 60, "the victim to run every step", hosts)
                hosts += [Host(["worker"], env) for _ in range(2)]
                with db.connect() as conn:
                    wait_for(lambda: conn.execute(sa.text("SELECT count(*) FROM workers")).scalar() == 3, 60,
                             "the survivors to register", hosts)
                # the victim beats on beside them; killed at a random moment of its 1.5 s beat
                time.sleep(args.settle + random.uniform(0, 1.5))
                killed_at = victim.kill()
                rows = wait_for(lambda: all_taken_again(db), 60, "the survivors to take the steps", hosts)
                check_lost(rows)
            finally:
                for h in hosts:
                    h.stop()
                db.dispose()
    started = sorted(r.started_at for r in rows)
    return {"kill_to_first_s": started[0] - killed_at, "kill_to_all_s": started[-1] - killed_at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (TASKER_BENCH_POSTGRES_URL)")
    parser.add_argument("--same-host", action="store_true", help="PostgreSQL: the victim is of this host")
    parser.add_argument("--serve", action="store_true", help="SQLite: run `serve` instead of `worker`")
    parser.add_argument("--tasks", type=int, default=5, help="steps in flight when the worker dies")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=1.0,
                        help="PostgreSQL: least seconds between the survivors' start and the kill (plus 0-1.5 s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    run = postgres_round if args.postgres else sqlite_round
    rounds = [run(args) for _ in range(args.rounds)]
    summary = {key: {"median": statistics.median(r[key] for r in rounds), "max": max(r[key] for r in rounds)}
               for key in rounds[0]}
    scenario = ("postgres, victim on " + ("this host" if args.same_host else "another host") if args.postgres
                else f"sqlite, {'serve' if args.serve else 'worker'} restarted")
    if args.json:
        print(json.dumps({"scenario": scenario, "rounds": rounds, "summary": summary}, indent=2))
        return
    print(f"{scenario}: {args.rounds} rounds, {args.tasks} steps in flight, {platform.node()}")
    for key, value in summary.items():
        print(f"  {key:<22} median {value['median']:6.2f} s   max {value['max']:6.2f} s")


if __name__ == "__main__":
    main()
