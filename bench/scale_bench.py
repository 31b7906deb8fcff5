"""Scale-out on PostgreSQL: W1 (4-step chain) and W2 (1 -> 8 -> 1) throughput with 1, 2 and 4
`tasker-host worker` processes sharing one database (next to one in-process runner), and the
wake-up latency of idle worker processes, in one run.

    python bench/scale_bench.py                                  # defaults: 8,000 W1 / 4,000 W2, 3 runs
    python bench/scale_bench.py --w1-tasks 500 --w2-tasks 250 --runs 1 --latency-samples 20 --json

Per (workload, worker count, run): a fresh schema, `tasker-host db upgrade`; N `tasker-host
worker` processes started and listening (long-running workers: start-up is not measured); every
task created by this process in ONE transaction (visible, and waking the workers, at once); then
this process waits (10 Hz polls) until all are complete and stops the workers with SIGTERM.
steps/s is reported three ways: wall clock (creation committed -> all complete seen), the
database window (first step's started_at -> last step's completed_at: the figure the targets
use) and the middle 80 % of step completions (no ramp-up or tail).
Latency: idle workers with a long --poll-seconds; one W1 task at a time is created here and the
rows give created_at -> first step's started_at (created_at is stamped before the creating
transaction, so its write and commit count); "after commit" is from the moment the create call
returned here (the commit acknowledged) to started_at. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import anyio
import psycopg

from tasker_host.engine.config import EngineConfig
from tasker_host.host import build_host
from tasker_host.settings import HostSettings
from tasker_host.testing.entry_point_dir import write_plugin_dist

BENCH = Path(__file__).resolve().parent
PG_URL = os.environ.get("TASKER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TASKER_HOST = Path(sys.executable).with_name("tasker-host")
STEPS = {"w1": 4, "w2": 10}
MODULE = "tasker_bench_scale"
# The generated plugin module is bench/workloads.py itself (it imports only tasker_host) plus:
PLUGIN_LINE = '\nplugin = make_plugin(["bench"], [w1(), w2()], {"Work": handler_for(Probe())})\n'
# (workers log at --log-level warning here: a line per transition is not what this measures)
EXPECTED_STDERR = re.compile(r"worker \S+ running \(|worker stopped|SIGTERM: finishing running steps")


# --- database ------------------------------------------------------------------------------------
def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def fresh_schema():
    """A URL whose connections use a new schema `bench_<uuid>`, migrated; dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq(PG_URL), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    try:
        subprocess.run([str(TASKER_HOST), "--database-url", url, "db", "upgrade"], check=True,
                       capture_output=True, text=True)
        yield url
    finally:
        with psycopg.connect(libpq(PG_URL), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def checkpoint() -> None:
    """Start a measurement right after a CHECKPOINT: a drain writes ~200 MB of WAL, so without it
    every third run or so would straddle a checkpoint the WAL volume requests (and pay for the
    full-page images that follow), which decided comparisons more than the worker counts did."""
    with psycopg.connect(libpq(PG_URL), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def window(url: str) -> dict:
    """What the rows say about a drained database: counts and the steps' time window."""
    with psycopg.connect(libpq(url)) as conn:
        steps, done, first, last, p10, p90 = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'complete'), min(started_at), max(completed_at),"
            " percentile_cont(0.1) WITHIN GROUP (ORDER BY completed_at),"
            " percentile_cont(0.9) WITHIN GROUP (ORDER BY completed_at) FROM steps").fetchone()
        tasks, complete = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'complete') FROM tasks").fetchone()
    if complete != tasks or done != steps:
        raise RuntimeError(f"not drained: {complete}/{tasks} tasks, {done}/{steps} steps complete")
    return {"steps": steps, "db_window_s": last - first, "mid80_s": p90 - p10}


# --- the plugin and the worker processes -------------------------------------------------------
def plugin_site(root: Path) -> Path:
    source = (BENCH / "workloads.py").read_text(encoding="utf-8") + PLUGIN_LINE
    site = write_plugin_dist(root / "site", "tasker-bench-scale", "0.0.0", "bench", f"{MODULE}:plugin",
                             module_source={f"{MODULE}.py": source})
    sys.path.insert(0, str(site))  # this process discovers it the same way the workers do
    return site


def open_host(url: str, concurrency: int | None):
    return build_host(HostSettings(database_url=url),
                      engine_config=EngineConfig.from_env(concurrency=concurrency))


def start_workers(n: int, url: str, site: Path, logdir: Path, options: list[str]) -> list:
    env = {**os.environ, "TASKER_DATABASE_URL": url,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    procs: list = []
    try:
        for i in range(n):
            log = logdir / f"worker_{uuid.uuid4().hex[:8]}_{i}.log"
            with open(log, "w") as err:
                proc = subprocess.Popen([str(TASKER_HOST), "worker", *options], env=env,
                                        stdout=subprocess.DEVNULL, stderr=err)
            proc.log = log  # its stderr, read after it exits
            procs.append(proc)
    except BaseException:
        stop_workers(procs)
        raise
    return procs


def stop_workers(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def unexpected_stderr(procs: list) -> list[str]:
    lines = [line for p in procs for line in p.log.read_text(errors="replace").splitlines()]
    return [line for line in lines if line.strip() and not EXPECTED_STDERR.search(line)]


def worker_options(args: argparse.Namespace, *extra: str) -> list[str]:
    return ["--log-level", "warning", *(["--concurrency", str(args.concurrency)] if args.concurrency else []), *extra]


# --- throughput ----------------------------------------------------------------------------------
def create_tasks(host, workload: str, n: int) -> float:
    """Create n tasks in ONE transaction (they become visible, and wake the workers, at once);
    returns tasks/s."""
    t0 = time.perf_counter()
    host.service.submit([host.service.prepare("bench", workload) for _ in range(n)])
    return n / (time.perf_counter() - t0)


def wait_until_listening(url: str, n: int, procs: list, timeout: float = 60) -> None:
    """Bounded wait until n worker processes have started and LISTEN for wake-ups (their
    listener connections show in pg_stat_activity): start-up stays out of the measurement."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN tasker_work'"
                           ).fetchone()[0] < n:
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"workers not listening: {dead[0].log.read_text() if dead else 'timeout'}")
            time.sleep(0.05)


def wait_until_drained(url: str, tasks: int, timeout: float) -> None:
    """Bounded polling (10 Hz, so the measuring process takes little CPU from the workers)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM tasks WHERE status = 'complete'").fetchone()[0] < tasks:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not drained after {timeout:g} s")
            time.sleep(0.1)


def cpu_seconds(pids: list[int] | None = None, command: str = "postgres") -> float:
    """User + system CPU seconds so far of these processes (or of every process named ``command``:
    the database server), from /proc (Linux)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in ([str(p) for p in pids] if pids is not None else filter(str.isdigit, os.listdir("/proc"))):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if pids is not None or name == command:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def drain_with_workers(host, url: str, workload: str, tasks: int, workers: int, args: argparse.Namespace,
                       site: Path, logdir: Path) -> dict:
    """Start the workers, wait until they listen, create every task in one transaction, wait
    until all are complete, stop the workers (SIGTERM). Returns create tasks/s, wall time and CPU."""
    procs = start_workers(workers, url, site, logdir, worker_options(args))
    try:
        wait_until_listening(url, workers, procs)
        checkpoint()
        create_per_s = create_tasks(host, workload, tasks)
        pids = [p.pid for p in procs]
        cpu0, db0, t0 = cpu_seconds(pids), cpu_seconds(), time.perf_counter()
        wait_until_drained(url, tasks, args.timeout)
        wall, cpu1, db1 = time.perf_counter() - t0, cpu_seconds(pids), cpu_seconds()
    finally:
        stop_workers(procs)
    failed = [p.returncode for p in procs if p.returncode != 0]
    if failed:
        raise RuntimeError(f"worker exit codes {failed}: {unexpected_stderr(procs)[-5:]}")
    return {"wall_s": wall, "worker_cpu_s": cpu1 - cpu0, "db_cpu_s": db1 - db0,
            "stderr": unexpected_stderr(procs), "create_tasks_per_s": create_per_s}


def drain_in_process(host) -> dict:
    t0 = time.perf_counter()
    anyio.run(host.engine.run_until_idle)
    return {"wall_s": time.perf_counter() - t0, "worker_cpu_s": None, "db_cpu_s": None, "stderr": []}


def throughput_once(workload: str, tasks: int, workers: int, args, site: Path, logdir: Path) -> dict:
    """workers == 0: one in-process runner (this process), as bench/engine_bench.py runs it."""
    with fresh_schema() as url:
        host = open_host(url, args.concurrency)
        try:
            if workers:
                drained = drain_with_workers(host, url, workload, tasks, workers, args, site, logdir)
            else:
                checkpoint()
                drained = {"create_tasks_per_s": create_tasks(host, workload, tasks), **drain_in_process(host)}
        finally:
            host.close()
        result = {**window(url), **drained}
    if result["steps"] != tasks * STEPS[workload]:
        raise RuntimeError(f"{workload}: {result['steps']} steps, expected {tasks * STEPS[workload]}")
    steps = result["steps"]
    result.update(steps_per_s_wall=steps / result["wall_s"], steps_per_s_db=steps / result["db_window_s"],
                  steps_per_s_mid80=0.8 * steps / result["mid80_s"])
    return result


def throughput(args: argparse.Namespace, site: Path, logdir: Path) -> dict:
    """Runs interleaved (run 1 of every configuration, then run 2 ...); medians per configuration."""
    sizes = {"w1": args.w1_tasks, "w2": args.w2_tasks}
    counts = ([0] if args.in_process else []) + args.workers
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.runs):
        for workload in ("w1", "w2"):
            for workers in counts:
                r = throughput_once(workload, sizes[workload], workers, args, site, logdir)
                runs.setdefault((workload, workers), []).append(r)
                if not args.json:
                    print(f"  .. {workload} x{workers or 'in-process'}: {r['steps_per_s_db']:,.0f} steps/s "
                          f"(db window), wall {r['wall_s']:.2f} s", file=sys.stderr)
    out = {}
    for (workload, workers), rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]
               if isinstance(rs[0][k], (int, float)) and rs[0][k] is not None}
        med["stderr"] = sorted({line for r in rs for line in r["stderr"]})
        med["runs_steps_per_s_db"] = [round(r["steps_per_s_db"]) for r in rs]
        out[f"{workload}/{workers}"] = {"workload": workload, "workers": workers, "tasks": sizes[workload], **med}
    return out


# --- wake-up latency -----------------------------------------------------------------------------
def one_sample(host, conn, timeout: float) -> dict:
    task_id = host.service.create_task("bench", "w1").task.id
    acknowledged = time.time()  # the create call returned: its transaction committed
    deadline = time.monotonic() + timeout
    time.sleep(0.05)  # a W1 task takes ~20 ms: look once it is surely done, then poll gently
    while True:
        row = conn.execute("SELECT t.status, t.created_at, t.completed_at, s.started_at FROM tasks t "
                           "JOIN steps s ON s.task_id = t.id AND s.name = 's1' WHERE t.id = %s",
                           (task_id,)).fetchone()
        if row[0] == "complete":
            return {"pickup_ms": (row[3] - row[1]) * 1000, "complete_ms": (row[2] - row[1]) * 1000,
                    "after_commit_ms": (row[3] - acknowledged) * 1000}
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} not complete after {timeout:g} s (status {row[0]})")
        time.sleep(0.02)  # bounded polling; the figures come from the rows' own timestamps


def latency(workers: int, args: argparse.Namespace, site: Path, logdir: Path) -> dict:
    rng = random.Random(workers)
    with fresh_schema() as url:
        procs = start_workers(workers, url, site, logdir,
                              worker_options(args, "--poll-seconds", str(args.latency_poll_seconds)))
        host = None
        try:
            wait_until_listening(url, workers, procs)
            host = open_host(url, args.concurrency)
            samples = []
            with psycopg.connect(libpq(url), autocommit=True) as conn:
                for _ in range(args.latency_warmup + args.latency_samples):
                    time.sleep(rng.uniform(0.02, 0.2))  # small random gaps (a poll timer restarts at each idle claim)
                    samples.append(one_sample(host, conn, args.latency_poll_seconds + 30))
        finally:
            if host is not None:
                host.close()
            stop_workers(procs)
    kept = samples[args.latency_warmup:]
    pickup = sorted(s["pickup_ms"] for s in kept)
    return {"workers": workers, "samples": len(kept), "poll_seconds": args.latency_poll_seconds,
            "pickup_p50_ms": statistics.median(pickup), "pickup_p90_ms": pct(pickup, 0.9),
            "pickup_max_ms": pickup[-1],
            "after_commit_p50_ms": statistics.median(s["after_commit_ms"] for s in kept),
            "complete_p50_ms": statistics.median(s["complete_ms"] for s in kept),
            "stderr": unexpected_stderr(procs)}


def pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- report --------------------------------------------------------------------------------------
def targets(doc: dict) -> list[dict]:
    out, tp = [], doc["throughput"]
    for w in ("w1", "w2"):
        one, two, four = (tp.get(f"{w}/{n}", {}).get("steps_per_s_db") for n in (1, 2, 4))
        if one and two:
            out.append({"target": f"{w.upper()}: 2 workers >= 1.3x 1 worker", "value": f"{two / one:.2f}x",
                        "pass": two >= 1.3 * one})
        if two and four:
            out.append({"target": f"{w.upper()}: 4 workers >= 2 workers", "value": f"{four / two:.2f}x",
                        "pass": four >= two})
    for lat in doc["latency"]:
        out.append({"target": f"wake-up p50 <= 5 ms ({lat['workers']} idle worker(s))",
                    "value": f"{lat['pickup_p50_ms']:.1f} ms", "pass": lat["pickup_p50_ms"] <= 5})
    return out


def table(doc: dict) -> str:
    lines = [f"command: {doc['command']}", f"machine: {doc['machine']} (load after: {doc['load_after']})",
             f"started: {doc['started']}", ""]
    lines.append(f"{'workload':<9}{'processes':>11}{'tasks':>7}{'steps':>7}{'create/s':>10}{'wall s':>8}"
                 f"{'steps/s wall':>14}{'steps/s db':>12}{'mid 80%':>10}{'vs 1 worker':>13}"
                 f"{'worker ms/step':>16}{'db ms/step':>12}")
    for r in doc["throughput"].values():
        base = doc["throughput"].get(f"{r['workload']}/1", {}).get("steps_per_s_db")
        cpu = f"{1000 * r['worker_cpu_s'] / r['steps']:.3f}" if r.get("worker_cpu_s") is not None else "-"
        db = f"{1000 * r['db_cpu_s'] / r['steps']:.3f}" if r.get("db_cpu_s") is not None else "-"
        lines.append(f"{r['workload'].upper():<9}{r['workers'] or 'in-proc':>11}{r['tasks']:>7}{r['steps']:>7.0f}"
                     f"{r['create_tasks_per_s']:>10,.0f}{r['wall_s']:>8.2f}{r['steps_per_s_wall']:>14,.0f}"
                     f"{r['steps_per_s_db']:>12,.0f}{r['steps_per_s_mid80']:>10,.0f}"
                     f"{(r['steps_per_s_db'] / base if base else 0):>12.2f}x{cpu:>16}{db:>12}")
    for lat in doc["latency"]:
        lines.append(f"wake-up, {lat['workers']} idle worker(s), --poll-seconds {lat['poll_seconds']:g}, "
                     f"{lat['samples']} W1 tasks: created -> first step started p50 {lat['pickup_p50_ms']:.1f} ms, "
                     f"p90 {lat['pickup_p90_ms']:.1f} ms, max {lat['pickup_max_ms']:.1f} ms; "
                     f"after commit p50 {lat['after_commit_p50_ms']:.1f} ms; "
                     f"created -> complete p50 {lat['complete_p50_ms']:.1f} ms")
    lines.append("")
    lines += [f"{'PASS' if t['pass'] else 'MISS'}  {t['target']}: {t['value']}" for t in doc["targets"]]
    stderr = sorted({line for r in [*doc["throughput"].values(), *doc["latency"]] for line in r["stderr"]})
    lines += ["", f"unexpected worker stderr lines: {len(stderr)}", *(f"  {s}" for s in stderr[:10])]
    return "\n".join(lines)


def machine() -> str:
    with psycopg.connect(libpq(PG_URL)) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    return (f"{os.cpu_count()} cpus, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
            f"CPython {platform.python_version()}, PostgreSQL {server}, {platform.platform()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # big enough that a drain takes seconds at every worker count: ramp-up (the first claims) and
    # the tail (the last tasks' chains, run at low parallelism) must not decide the comparison
    parser.add_argument("--w1-tasks", type=int, default=8000)
    parser.add_argument("--w2-tasks", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker process counts")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (medians)")
    parser.add_argument("--concurrency", type=int, help="--concurrency of every worker (default: the worker's)")
    parser.add_argument("--no-in-process", dest="in_process", action="store_false",
                        help="skip the in-process runner row")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a drain counts as failed")
    parser.add_argument("--latency-workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--latency-warmup", type=int, default=3)
    parser.add_argument("--latency-poll-seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    args = parser.parse_args()
    doc = {"command": shlex.join([os.path.relpath(sys.executable), *sys.argv]),
           "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with tempfile.TemporaryDirectory() as tmp:
        site, logdir = plugin_site(Path(tmp)), Path(tmp)
        doc["throughput"] = throughput(args, site, logdir)
        doc["latency"] = [latency(n, args, site, logdir) for n in args.latency_workers]
    doc["targets"] = targets(doc)
    doc["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(json.dumps(doc, indent=2) if args.json else table(doc))


if __name__ == "__main__":
    main()
