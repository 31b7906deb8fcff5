"""Per-call latency of the SQL store's hot operations on SQLite and PostgreSQL.

    python bench/store_ops.py                        # both backends, 240 single calls, 12 batch rounds
    python bench/store_ops.py --backends postgresql --calls 400 --rounds 20
    python bench/store_ops.py --preload 20000        # on a database that already ran 20,000 tasks

Single calls (medians over ``--calls``):

* ``create_task``: one W1 task (4-step chain);
* ``claim(1)``: one ready step out of ``--calls`` waiting tasks;
* ``record_and_claim(1, limit 1)``: the runner's hot path for one task: its finished step in, the
  next step out (3 of 4 calls per task claim a step, the 4th completes the task and claims none);
* ``W1 chain``: the sum for one task: create_task + claim(1) + 4 x record_and_claim(1, limit 1).

Batches of 200 (medians over ``--rounds``): ``claim(200)`` of 200 tasks' first steps, then
``record_and_claim(200, limit 200)`` x 3 (each records 200 steps and claims the 200 next ones).

PostgreSQL tables are ANALYZEd once the queue for ``claim(1)`` is written (as autovacuum would
on a database in use); ``--fresh`` skips that. ``--preload N`` first runs N W1 tasks to completion
(in batches of 500), so the tables hold history as a database in use does.
``stmts`` is the number of SQL statements each call sends (SQLAlchemy cursor executions; an
executemany counts once; BEGIN / COMMIT not included). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tasker_host.models import StepState
from tasker_host.store.base import Claim, NewStep, NewTask, StepOutcome
from tasker_host.store.sql import SqlStore

PG_URL = os.environ.get("TASKER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LEASE = 60.0
W1 = ("s1", "s2", "s3", "s4")
BATCH = 200


def w1_task(task_id: str) -> NewTask:
    steps = tuple(NewStep(n, (W1[i - 1],) if i else (), (W1[i + 1],) if i + 1 < len(W1) else ())
                  for i, n in enumerate(W1))
    return NewTask(id=task_id, namespace="bench", name="w1", version="1.0.0",
                   context={"order": 42, "items": ["x", "y"]}, template={"name": "w1", "steps": list(W1)},
                   steps=steps, provenance={"dist": "tasker-bench"})


def outcome(c: Claim, at: float, owner: str = "w") -> StepOutcome:
    return StepOutcome(c.task_id, c.step, owner, c.attempt, StepState.COMPLETE, at,
                       reason="handler returned", results={"step": c.step, "n": 1})


@contextmanager
def open_store(backend: str, workdir: Path) -> Iterator[SqlStore]:
    if backend == "sqlite":
        store = SqlStore(f"sqlite:///{workdir / f'{uuid.uuid4().hex}.db'}")
        try:
            yield store
        finally:
            store.close()
        return
    schema = f"tasker_store_ops_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    store = SqlStore(f"{PG_URL}?options=-csearch_path%3D{schema}", auto_upgrade=True)
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Meter:
    """Wall time and statement count of single calls."""

    def __init__(self, store: SqlStore):
        self.statements = 0
        self.samples: dict[str, list[tuple[float, int]]] = {}
        sa.event.listen(store.engine, "before_cursor_execute", self._count)

    def _count(self, *_args: Any) -> None:
        self.statements += 1

    def __call__(self, label: str, fn: Callable[[], Any]) -> Any:
        before = self.statements
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        self.samples.setdefault(label, []).append((elapsed, self.statements - before))
        return result

    def row(self, label: str) -> tuple[float, float, float, float]:
        times = [t for t, _ in self.samples[label]]
        stmts = statistics.median(n for _, n in self.samples[label])
        q = statistics.quantiles(times, n=20) if len(times) > 1 else times * 19
        return statistics.median(times) * 1e3, q[0] * 1e3, q[-1] * 1e3, stmts


def analyze(store: SqlStore) -> None:
    """PostgreSQL: planner statistics, as autovacuum keeps them on a database in use."""
    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE tasks, steps, transitions")


def preload(store: SqlStore, n: int) -> None:
    now = 100.0
    for start in range(0, n, 500):
        for i in range(start, min(n, start + 500)):
            store.create_task(w1_task(f"p{i:07}"), now)
        claims = store.claim("w", 500, now, LEASE)
        while claims:
            now += 0.001
            batch, claims = store.record_and_claim([outcome(c, now) for c in claims], "w", 500, now, LEASE)
            assert not batch.rejected


def run_single(store: SqlStore, calls: int, meter: Meter, fresh: bool) -> None:
    now = 1_000.0
    # claim(1) out of a queue of waiting tasks
    for i in range(calls):
        store.create_task(w1_task(f"q{i:06}"), now)
    if not fresh:
        analyze(store)
    for _ in range(calls):
        now += 0.001
        assert len(meter("claim(1)", lambda: store.claim("w", 1, now, LEASE))) == 1
    # one task at a time, as the runner drives a lone W1 task
    for i in range((calls + 3) // 4 + 1):
        chain = time.perf_counter()
        meter("create_task", lambda: store.create_task(w1_task(f"c{i:06}"), now))
        claims = store.claim("w", 1, now, LEASE)
        while claims:
            now += 0.001
            done = [outcome(c, now) for c in claims]
            batch, claims = meter("record_and_claim(1, limit 1)",
                                  lambda: store.record_and_claim(done, "w", 1, now, LEASE))
            assert not batch.rejected
        meter.samples.setdefault("W1 chain", []).append((time.perf_counter() - chain, 0))


def run_batches(store: SqlStore, rounds: int, meter: Meter) -> None:
    now = 10_000.0
    for r in range(rounds):
        for i in range(BATCH):
            store.create_task(w1_task(f"b{r:04}_{i:04}"), now)
        now += 1
        claims = meter(f"claim({BATCH})", lambda: store.claim("w", BATCH, now, LEASE))
        assert len(claims) == BATCH
        for _ in range(len(W1) - 1):
            now += 1
            done = [outcome(c, now) for c in claims]
            batch, claims = meter(f"record_and_claim({BATCH}, limit {BATCH})",
                                  lambda: store.record_and_claim(done, "w", BATCH, now, LEASE))
            assert not batch.rejected and len(claims) == BATCH
        store.record([outcome(c, now + 1) for c in claims])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--calls", type=int, default=240, help="single calls per operation (>= 200)")
    parser.add_argument("--rounds", type=int, default=12, help="batch-200 rounds")
    parser.add_argument("--fresh", action="store_true",
                        help="PostgreSQL: no ANALYZE (plans on never-analyzed tables, a new database's first minute)")
    parser.add_argument("--preload", type=int, default=0, help="first run this many W1 tasks to completion")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, sqlalchemy {sa.__version__}; {args.calls} calls, "
          f"{args.rounds} rounds of {BATCH}, {args.preload} tasks preloaded"
          f"{'; PostgreSQL tables never analyzed' if args.fresh else ''}")
    print("| backend | operation | median ms | p5 ms | p95 ms | stmts | n |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            with open_store(backend, Path(tmp)) as store:
                preload(store, args.preload)
                meter = Meter(store)
                run_single(store, args.calls, meter, args.fresh)
                run_batches(store, args.rounds, meter)
                for label in meter.samples:
                    median, p5, p95, stmts = meter.row(label)
                    shown = "-" if label == "W1 chain" else f"{stmts:g}"
                    print(f"| {backend} | {label} | {median:.3f} | {p5:.3f} | {p95:.3f} | {shown} | "
                          f"{len(meter.samples[label])} |")


if __name__ == "__main__":
    main()
