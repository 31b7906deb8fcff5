"""Engine throughput, latency and memory: W1 (4-step chain) and W2 (1 -> 8 -> 1) on the memory
store (the no-persistence lower bound), embedded SQLite and PostgreSQL, in one run.

    python bench/engine_bench.py --tasks 2000 --runs 3            # throughput + latency table
    python bench/engine_bench.py --memory 1000 10000              # peak RSS, one subprocess per size

See bench/README.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import W1_STEPS, W2_STEPS, Probe, entry_points  # noqa: E402

from tasker_host.engine.runner import EngineConfig  # noqa: E402
from tasker_host.host import build_host  # noqa: E402
from tasker_host.models import TaskState  # noqa: E402
from tasker_host.settings import HostSettings  # noqa: E402
from tasker_host.store.base import TaskFilter  # noqa: E402

PG_URL = os.environ.get("TASKER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def fresh_pg_url(tag: str) -> str:
    import psycopg

    schema = f"tasker_bench_{tag}_{os.getpid()}"
    with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_bench_schemas() -> None:
    """Drop the schemas this process made (each run makes its own, fresh)."""
    import psycopg

    with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                            (f"tasker_bench_%_{os.getpid()}",))]
        for name in names:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def make_host(backend: str, tag: str, probe: Probe, workdir: Path, tracer_provider=None):
    if backend == "memory":
        url = "memory"
    elif backend == "sqlite":
        url = f"sqlite:///{workdir / f'{tag}.db'}"
    else:
        from tasker_host.store import upgrade

        url = fresh_pg_url(tag)
        upgrade(url)
    return build_host(HostSettings(database_url=url), entry_points=entry_points(probe),
                      engine_config=EngineConfig(concurrency=512, claim_batch=512), tracer_provider=tracer_provider)


def throughput(backend: str, workload: str, n: int, workdir: Path, tracer_provider=None, freeze: bool = False) -> dict:
    """``freeze``: as ``serve`` and ``worker`` do once their host is built, keep what lives as long
    as the process out of the cyclic collector's passes (``gc.freeze()``; undone at the end)."""
    probe = Probe()
    host = make_host(backend, f"{workload}_{n}_{time.monotonic_ns()}", probe, workdir, tracer_provider)
    if freeze:
        gc.collect()
        gc.freeze()
    t0 = time.perf_counter()
    for _ in range(n):
        host.service.create_task("bench", workload)
    created = time.perf_counter() - t0
    t1, cpu1 = time.perf_counter(), time.process_time()
    anyio.run(host.engine.run_until_idle)
    ran, cpu = time.perf_counter() - t1, time.process_time() - cpu1
    done = host.store.list_tasks(TaskFilter(status=TaskState.COMPLETE, limit=n + 1))
    assert len(done) == n, f"{backend} {workload}: only {len(done)}/{n} tasks completed"
    steps = n * (W1_STEPS if workload == "w1" else W2_STEPS)
    host.close()
    if freeze:
        gc.unfreeze()
    return {"create_tasks_per_s": n / created, "tasks_per_s": n / ran, "steps_per_s": steps / ran,
            "max_parallel_steps_in_one_task": probe.max_parallel,
            "steps_per_cpu_s": steps / cpu if cpu > 0 else float("nan")}


def latency(backend: str, samples: int, workdir: Path) -> float:
    """p50 of created -> complete for one W1 task at a time, with the engine running idle."""
    host = make_host(backend, "latency", Probe(), workdir)
    times: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(host.engine.run)
            for _ in range(samples + 5):
                t0 = time.perf_counter()
                task = await host.engine.db(host.service.create_task, "bench", "w1")
                status = await host.engine.wait_for_task(task.task.id)
                assert status is TaskState.COMPLETE
                times.append(time.perf_counter() - t0)
            tg.cancel_scope.cancel()

    anyio.run(main)
    host.close()
    return statistics.median(times[5:]) * 1000  # the first few warm caches up


def table(args: argparse.Namespace) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for backend in args.backends:
            for workload in ("w1", "w2"):
                runs = [throughput(backend, workload, args.tasks, workdir) for _ in range(args.runs)]
                results[(backend, workload)] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results[(backend, "latency_ms")] = latency(backend, args.latency, workdir)
    return results


def report(results: dict, args: argparse.Namespace) -> None:
    base = {w: results.get(("memory", w), {}).get("steps_per_s") for w in ("w1", "w2")}
    print(f"tasks per run: {args.tasks}, runs: {args.runs} (medians), python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus")
    print(f"{'backend':<10}{'workload':<10}{'steps/s':>10}{'tasks/s':>10}{'create/s':>10}"
          f"{'vs memory':>11}{'max ||':>8}")
    for (backend, workload), r in results.items():
        if workload == "latency_ms":
            continue
        ratio = f"{base[workload] / r['steps_per_s']:.2f}x" if base.get(workload) else "-"
        print(f"{backend:<10}{workload:<10}{r['steps_per_s']:>10.0f}{r['tasks_per_s']:>10.0f}"
              f"{r['create_tasks_per_s']:>10.0f}{ratio:>11}{r['max_parallel_steps_in_one_task']:>8}")
    for backend in args.backends:
        print(f"{backend:<10}single W1 task created -> complete p50: {results[(backend, 'latency_ms')]:.2f} ms")


def memory_child(n: int, backend: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        host = make_host(backend, f"mem_{n}", Probe(), Path(tmp))
        for _ in range(n):
            host.service.create_task("bench", "w1")
        anyio.run(host.engine.run_until_idle)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"tasks": n, "peak_rss_mb": rss_mb}))


def memory(sizes: list[int], backend: str) -> None:
    print(f"peak RSS of one process creating and running N W1 tasks ({backend}):")
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(n), "--backends", backend],
                             check=True, capture_output=True, text=True).stdout
        doc = json.loads(out.strip().splitlines()[-1])
        print(f"  {n:>6} tasks: {doc['peak_rss_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=int, default=50, help="single-task samples")
    parser.add_argument("--backends", nargs="+", default=["memory", "sqlite", "postgres"])
    parser.add_argument("--memory", type=int, nargs="*", help="measure peak RSS for these task counts")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.backends[0])
    if args.memory:
        return memory(args.memory, args.backends[0])
    try:
        report(table(args), args)
    finally:
        if "postgres" in args.backends:
            drop_bench_schemas()


if __name__ == "__main__":
    main()
