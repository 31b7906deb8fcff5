"""Scale-out on PostgreSQL, for real: three ``tasker-host worker`` processes and an API-only node
(``serve --no-worker``) share one database; one worker is SIGKILLed mid-run.

The probe plugin (``probe_plugin.py``, made discoverable through a dist-info on ``PYTHONPATH``)
runs a DAG of six steps (start, three branches, join, finish) and records in probe tables which
process runs which step. 500 tasks are created through the API; once the victim has finished 100
steps and holds 8 running ones, it is killed. The victim reports another host name (set in its
process before the CLI runs): the survivors cannot check its pid, only its silence gives it away,
as for a worker on another machine. Leases keep their default (60 s). The test then shows:

* every task completes, and every step completed exactly once in the probe's view (``probe_done``
  is unique per step) apart from re-runs of what the dead worker had finished but never recorded;
* no step ever ran in two live workers at once (``probe_overlaps`` stays empty), and no live
  worker was ever presumed dead (every reclaim names the victim as the previous owner);
* the dead worker's steps were taken over (``probe_takeovers``) once it had missed its heartbeats
  (4 beats of 1.5 s: its last beat came at most one beat before the kill, so no sooner than the
  kill plus 4.5 s) and within 10 s of the kill — long before its leases ran out; the steps'
  last error says they were lost with it;
* the surviving workers stop cleanly on SIGTERM (exit code 0) and deregister.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tasker_host.store._common import CLAIM_REASON, RECLAIM_REASON
from tasker_host.testing.entry_point_dir import write_plugin_dist

pytestmark = pytest.mark.postgres

BIN = Path(sys.executable).parent / "tasker-host"
TASKS, STEP_SECONDS = 500, 0.03
HEARTBEAT, DEAD_AFTER, TAKEN_WITHIN = 1.5, 6.0, 10.0  # the defaults, and the guarantee
ELSEWHERE = ("import socket, sys; socket.gethostname = lambda: 'another-host'; "
             "from tasker_host.cli import main; sys.argv[0] = 'tasker-host'; main()")
WORKERS = ("victim", "worker_1", "worker_2")
STEPS = ("start", "branch_a", "branch_b", "branch_c", "join", "finish")
SLACK = 0.25  # seconds: scheduling noise between the test's clock reading and the kill
PROBE_SCHEMA = """
CREATE TABLE probe_running (task_id text, step text, worker_pid int NOT NULL, started_at float8 NOT NULL,
                            PRIMARY KEY (task_id, step));
CREATE TABLE probe_done (task_id text, step text, worker_pid int NOT NULL, started_at float8 NOT NULL,
                         finished_at float8 NOT NULL, UNIQUE (task_id, step));
CREATE TABLE probe_takeovers (task_id text, step text, kind text, old_pid int, new_pid int, started_at float8);
CREATE TABLE probe_overlaps (task_id text, step text, kind text, holder_pid int, worker_pid int, at float8);
"""


def reason_pattern(template: str) -> re.Pattern[str]:
    """A regex for one of the store's transition reasons, with its fields as named groups."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+)", re.escape(template)) + "$")


RECLAIMED, CLAIMED = reason_pattern(RECLAIM_REASON), reason_pattern(CLAIM_REASON)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float, what: str, tails: Callable[[], str],
             interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {value!r})\n{tails()}")
        time.sleep(interval)
    return value


class Cluster:
    """The subprocesses of one test, their logs (stdout and stderr, one file each) and clean-up."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.tmp, self.env = tmp, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(BIN), *args], env=self.env, cwd=self.tmp, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, f"tasker-host {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str, elsewhere: bool = False) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-c", ELSEWHERE] if elsewhere else [str(BIN)]
        with open(self.tmp / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen([*command, *args], env=self.env, cwd=self.tmp, stdout=log,
                                                stderr=subprocess.STDOUT)
        return self.procs[name]

    def tails(self, chars: int = 1500) -> str:
        parts = []
        for name, proc in self.procs.items():
            text = (self.tmp / f"{name}.log").read_text(errors="replace")[-chars:]
            parts.append(f"--- {name} (pid {proc.pid}, exit {proc.poll()}) ---\n{text}")
        return "\n".join(parts)

    def check_alive(self, *names: str) -> None:
        dead = [n for n in names if self.procs[n].poll() is not None]
        assert not dead, f"{dead} exited early\n{self.tails()}"

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@contextmanager
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    probe_source = (Path(__file__).parent / "probe_plugin.py").read_text()
    site = write_plugin_dist(tmp_path / "site", "tasker-probe", "0.1.0", "probe", "tasker_probe",
                             module_source={"tasker_probe.py": probe_source})
    env = {**os.environ, "TASKER_DATABASE_URL": postgres_url, "PROBE_DATABASE_URL": libpq(postgres_url),
           "PROBE_STEP_SECONDS": str(STEP_SECONDS),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    nodes = Cluster(tmp_path, env)
    try:
        yield nodes
    finally:
        nodes.kill_all()


def libpq(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq one (keeping ``options=-csearch_path=...``)."""
    return re.sub(r"^postgresql\+psycopg\d?://", "postgresql://", url)


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        cur = conn.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def create_tasks(base: str, token: str) -> list[int]:
    """POST the tasks concurrently (8 clients' worth); the status codes."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        def post(i: int) -> int:
            body = {"namespace": "probe", "name": "fanout", "version": "1.0.0", "context": {"n": i}}
            return client.post("/tasks", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(post, range(TASKS)))


def wait_until_up(nodes: Cluster, base: str) -> None:
    def answers() -> bool:
        nodes.check_alive("api")
        try:
            return httpx.get(f"{base}/health/live", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, 30, "the API node to answer", nodes.tails)


def victim_busy(url: str, pid: int) -> bool:
    """Well into the run: the victim finished 100 steps and is running at least 8 now."""
    (running, done), = query(url, "SELECT (SELECT count(*) FROM probe_running WHERE worker_pid = %s), "
                                  "(SELECT count(*) FROM probe_done WHERE worker_pid = %s)", pid, pid)
    return running >= 8 and done >= 100


def task_counts(url: str) -> dict[str, int]:
    return dict(query(url, "SELECT status, count(*) FROM tasks GROUP BY status"))


def all_complete(url: str, nodes: Cluster) -> bool:
    counts = task_counts(url)
    failed = {s: n for s, n in counts.items() if s in ("error", "cancelled", "resolved_manually")}
    assert not failed, f"tasks ended badly: {counts}\n{nodes.tails()}"
    return counts.get("complete", 0) == TASKS


def reclaims(url: str) -> list[dict[str, Any]]:
    """Every reclaim transition, with the time of the previous owner's last claim before it."""
    rows = query(url, "SELECT task_id, step, at, reason FROM transitions "
                      "WHERE step IS NOT NULL AND to_state = 'in_progress' ORDER BY id")
    claims: dict[tuple[str, str, str], float] = {}
    found = []
    for task_id, step, at, reason in rows:
        if m := RECLAIMED.match(reason):
            found.append({"task_id": task_id, "step": step, "at": at, "previous": m["previous"],
                          "owner": m["owner"], "claimed_at": claims.get((task_id, step, m["previous"]))})
            claims[(task_id, step, m["owner"])] = at
        elif m := CLAIMED.match(reason):
            claims[(task_id, step, m["owner"])] = at
    return found


def start_nodes(nodes: Cluster) -> tuple[str, str]:
    """Migrate, issue a token, create the probe tables, start the API node and the workers."""
    nodes.cli("db", "upgrade")
    token = nodes.cli("tokens", "create", "--name", "t", "--admin").strip().splitlines()[-1]
    query(nodes.env["TASKER_DATABASE_URL"], PROBE_SCHEMA)
    port = free_port()
    nodes.start("api", "serve", "--no-worker", "--port", str(port), "--log-level", "warning")
    for name in WORKERS:
        nodes.start(name, "worker", "--poll-seconds", "0.2", "--concurrency", "16", elsewhere=name == "victim")
    base = f"http://127.0.0.1:{port}/tasker"
    wait_until_up(nodes, base)
    return base, token


def create_and_kill(nodes: Cluster, url: str, base: str, token: str) -> tuple[float, set[tuple[str, str]]]:
    """Create the tasks while killing the victim mid-run; the kill time and the steps it held."""
    victim = nodes.procs["victim"]
    with ThreadPoolExecutor(1) as creator:
        created = creator.submit(create_tasks, base, token)
        wait_for(lambda: victim_busy(url, victim.pid), 30,
                 "the victim to have finished 100 steps and run 8 at once", nodes.tails)
        killed_at = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)  # reaped: the probe's liveness check now sees it dead
        held = set(query(url, "SELECT task_id, step FROM probe_running WHERE worker_pid = %s", victim.pid))
        statuses = created.result(timeout=60)
    assert statuses == [201] * TASKS, f"{sorted(set(statuses))}\n{nodes.tails()}"
    return killed_at, held


def test_a_sigkilled_worker_of_another_host_loses_its_steps_once_silent(tmp_path: Path, postgres_url: str):
    assert BIN.exists(), f"{BIN} is not installed"
    with cluster(tmp_path, postgres_url) as nodes:
        base, token = start_nodes(nodes)
        killed_at, orphans = create_and_kill(nodes, postgres_url, base, token)
        wait_for(lambda: all_complete(postgres_url, nodes), 120, f"all {TASKS} tasks to complete", nodes.tails,
                 interval=0.2)
        survivors = [nodes.procs[name] for name in WORKERS[1:]]
        for proc in survivors:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in survivors]
        assert codes == [0, 0], f"survivors exited with {codes}\n{nodes.tails()}"
        check_probe(postgres_url, nodes.procs["victim"].pid, {p.pid for p in survivors}, killed_at, orphans,
                    nodes.tails)


def check_probe(url: str, victim: int, survivors: set[int], killed_at: float,
                orphans: set[tuple[str, str]], tails: Callable[[], str]) -> None:
    overlaps = query(url, "SELECT * FROM probe_overlaps")
    assert overlaps == [], f"steps ran in two live workers at once: {overlaps[:20]}\n{tails()}"
    done = dict(query(url, "SELECT worker_pid, count(*) FROM probe_done GROUP BY worker_pid"))
    assert sum(done.values()) == TASKS * len(STEPS), done
    assert survivors <= set(done), f"a surviving worker did no work: {done}"
    assert query(url, "SELECT * FROM probe_running") == [], "steps started but never left"
    assert query(url, "SELECT count(*) FROM steps WHERE state <> 'complete'")[0][0] == 0

    takeovers = query(url, "SELECT task_id, step, kind, old_pid, new_pid, started_at FROM probe_takeovers")
    assert orphans and takeovers, f"nothing to take over: orphans {orphans}, takeovers {takeovers}"
    # an orphan is re-run by a survivor: seen as a takeover of the victim's running row, or — when
    # the victim's last probe commit was on the wire at the kill and landed after ``held`` was read
    # (its handler had finished, its outcome was never recorded) — of the victim's done row
    assert orphans <= {(t, s) for t, s, kind, *_ in takeovers if kind in ("running", "done")}, \
        "an orphan was never re-run"
    assert all(old == victim and new in survivors for *_, old, new, _ in takeovers), takeovers
    earliest = killed_at + DEAD_AFTER - HEARTBEAT - SLACK  # its last beat came at most one beat before the kill
    early = [t for t in takeovers if t[5] < earliest]
    assert not early, f"taken over sooner than {earliest - killed_at:.2f}s after the kill: {early}"
    late = [t for t in takeovers if t[5] > killed_at + TAKEN_WITHIN]
    assert not late, f"taken over later than {TAKEN_WITHIN}s after the kill: {late}"

    found = reclaims(url)
    assert {(r["task_id"], r["step"]) for r in found} >= {(t, s) for t, s, *_ in takeovers}, found
    not_victim = [r for r in found if f":{victim}:" not in r["previous"] or not r["previous"].endswith(" (lost)")]
    assert not not_victim, f"live workers lost their steps: {not_victim[:10]}\n{tails()}"
    errors = query(url, "SELECT task_id, name, last_error->>'message' FROM steps WHERE last_error IS NOT NULL")
    assert {(t, s) for t, s, _ in errors} == {(r["task_id"], r["step"]) for r in found}
    assert all(f":{victim}:" in m and "(no heartbeat since " in m for *_, m in errors), errors[:5]
    assert query(url, "SELECT id FROM workers") == [], "a survivor stopped without deregistering"
