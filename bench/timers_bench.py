"""Durable timers at scale: 100,000 steps waiting (``ctx.sleep_until``) on SQLite and PostgreSQL.

    python bench/timers_bench.py                                  # both backends, the defaults below
    python bench/timers_bench.py --steps 100000 --firing 10000 --window 20 --idle 10 --backends sqlite

Per backend, in a fresh database:

1. **Seed**: ``--steps`` tasks of one step each are created and run by the engine; each first run
   returns ``ctx.sleep_until(a day from now)``, so every step ends ``waiting`` (checked through
   ``count_by_state``) — the state the store keeps for a waiting step, nothing else.
2. **Aim**: ``--firing`` of them get timers spread over ``--window`` seconds, starting after the
   idle interval: their ``ready_at`` is moved there (one UPDATE each, what ``record`` writes for a
   nearer ``sleep_until``); the others keep waiting a day.
3. **Idle**: the runner(s) start — one on SQLite, **three** sharing the database on PostgreSQL —
   and for ``--idle`` seconds nothing is due: the process CPU time used meanwhile
   (``time.process_time``, every thread) is the cost of 100,000 waiting steps.
4. **Fire**: every aimed timer fires; lateness = the moment its handler runs again minus its
   time. Every wake-up is counted per task: a timer that fired twice (two workers) would show.

Not part of the test suite (see ``tests/scale/test_timers_once.py`` and ``tests/test_waits.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasker_host import StepHandler  # noqa: E402
from tasker_host.engine.config import EngineConfig  # noqa: E402
from tasker_host.host import Host, build_host  # noqa: E402
from tasker_host.settings import HostSettings  # noqa: E402
from tasker_host.store.sql.engine import upgrade  # noqa: E402
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc  # noqa: E402

PG_URL = os.environ.get("TASKER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DAY = 86_400.0


class Probe:
    """What the handlers saw: every wake-up (task id, when)."""

    def __init__(self) -> None:
        self.woken: list[tuple[str, float]] = []
        self.expected = 0
        self.all_fired: anyio.Event | None = None

    def handler(self) -> type[StepHandler]:
        probe = self

        class Nap(StepHandler):
            async def process(self, ctx: Any) -> Any:
                if ctx.wake is None:
                    return ctx.sleep_until(datetime.fromtimestamp(ctx.task.context["at"], UTC))
                probe.woken.append((ctx.task.id, time.time()))
                if probe.all_fired is not None and len(probe.woken) >= probe.expected:
                    probe.all_fired.set()
                return {}

        return Nap


def hosts(url: str, probe: Probe, count: int) -> list[Host]:
    nap = template_doc("timers", "nap", "1.0.0", [{"name": "nap", "handler_class": "Nap"}])
    plugin = make_plugin(["timers"], [nap],
                         {"Nap": probe.handler()})
    return [build_host(HostSettings(database_url=url, engine=EngineConfig(concurrency=512, claim_batch=512)),
                       entry_points=[FakeEntryPoint.of("timers", plugin, dist="tasker-timers")])
            for _ in range(count)]  # (each its own EngineConfig: its own lease owner)


def seed(host: Host, steps: int) -> float:
    """Create and run ``steps`` tasks until each waits a day; returns the seconds it took."""
    start, far = time.perf_counter(), time.time() + DAY
    for first in range(0, steps, 1000):
        batch = [host.service.prepare("timers", "nap", "1.0.0", {"at": far + i * 0.001})
                 for i in range(first, min(steps, first + 1000))]
        host.service.submit(batch)
        anyio.run(host.engine.run_until_idle)
    waiting = host.service.count_by_state().steps[("timers", "waiting")]
    assert waiting == steps, f"{waiting} steps wait, expected {steps}"
    return time.perf_counter() - start


def aim(host: Host, firing: int, start_at: float, window: float) -> dict[str, float]:
    """Move ``firing`` waiting steps' timers to ``start_at`` .. ``start_at + window``."""
    engine = host.store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT task_id FROM steps WHERE state = 'waiting' "
                                                  "ORDER BY task_id LIMIT :n"), {"n": firing})]
        due = {task_id: start_at + window * i / firing for i, task_id in enumerate(ids)}
        conn.execute(sa.text("UPDATE steps SET ready_at = :at WHERE task_id = :id"),
                     [{"at": at, "id": task_id} for task_id, at in due.items()])
    return due


async def run_runners(runners: list[Host], probe: Probe, idle: float, deadline: float) -> dict[str, float]:
    stop = anyio.Event()
    probe.all_fired = anyio.Event()
    figures: dict[str, float] = {}
    async with anyio.create_task_group() as tg:
        for host in runners:
            tg.start_soon(lambda h=host: h.engine.run(stop=stop, grace_seconds=5))
        await anyio.sleep(1.0)  # start-up (registration, the first claim) is not the idle cost
        cpu, wall = time.process_time(), time.perf_counter()
        await anyio.sleep(idle)
        figures["idle_cpu_seconds"] = time.process_time() - cpu
        figures["idle_wall_seconds"] = time.perf_counter() - wall
        assert not probe.woken, "a timer fired during the idle interval"
        cpu = time.process_time()
        with anyio.move_on_after(max(1.0, deadline - time.time())):
            await probe.all_fired.wait()
        figures["firing_cpu_seconds"] = time.process_time() - cpu
        stop.set()
    return figures


def measure(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    url = f"sqlite:///{workdir / 'timers.db'}" if backend == "sqlite" else fresh_pg_url()
    if backend == "postgres":
        upgrade(url)
    probe = Probe()
    runners = hosts(url, probe, 1 if backend == "sqlite" else 3)
    try:
        seconds = seed(runners[0], args.steps)
        start_at = time.time() + 1.0 + args.idle + 1.0
        due = aim(runners[0], args.firing, start_at, args.window)
        probe.expected = len(due)
        figures = anyio.run(run_runners, runners, probe, args.idle, start_at + args.window + 30)
        waiting_after = runners[0].service.count_by_state().steps[("timers", "waiting")]
    finally:
        for host in runners:
            host.close()
    fired = Counter(task_id for task_id, _ in probe.woken)
    late = sorted(at - due[task_id] for task_id, at in probe.woken if task_id in due)
    return {
        "backend": backend, "runners": len(runners), "waiting_steps": args.steps, "firing": len(due),
        "window_seconds": args.window, "seed_seconds": round(seconds, 1),
        "idle_seconds": round(figures["idle_wall_seconds"], 2),
        "idle_cpu_seconds": round(figures["idle_cpu_seconds"], 4),
        "idle_cpu_percent": round(100 * figures["idle_cpu_seconds"] / figures["idle_wall_seconds"], 3),
        "firing_cpu_seconds": round(figures["firing_cpu_seconds"], 2),
        "fired": len(fired), "fired_more_than_once": sum(1 for n in fired.values() if n > 1),
        "not_fired": len(set(due) - set(fired)), "still_waiting_after": waiting_after,
        "lateness_ms": {"min": ms(late[0]), "p50": ms(statistics.median(late)), "p99": ms(late[int(len(late) * .99)]),
                        "max": ms(late[-1])} if late else None,
        "later_than_1s": sum(1 for x in late if x > 1.0), "early": sum(1 for x in late if x < 0),
    }


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def fresh_pg_url() -> str:
    import psycopg

    schema = f"tasker_timers_{os.getpid()}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_pg_schema() -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "tasker_timers_{os.getpid()}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000, help="waiting steps")
    parser.add_argument("--firing", type=int, default=10_000, help="of which fire during the run")
    parser.add_argument("--window", type=float, default=20.0, help="seconds over which they fire")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds measured with nothing due")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            try:
                results.append(measure(backend, args, Path(tmp)))
            finally:
                if backend == "postgres":
                    drop_pg_schema()
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                  "platform": platform.platform()}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
