"""The cost of /metrics' store-derived series: N W1 tasks (4-step chain) are created and run
through the store (claims and outcomes written as a runner would), then ONE scrape folds every
transition written since the previous one. Prints the fold time and rate, and an empty scrape.

    .venv/bin/python bench/scrape_bench.py --tasks 5000 --backends sqlite postgres
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid

import sqlalchemy as sa

from tasker_host.api.store_metrics import TransitionMetrics
from tasker_host.models import StepState
from tasker_host.store.base import NewStep, NewTask, StepOutcome
from tasker_host.store.sql import SqlStore

CHAIN = ("a", "b", "c", "d")
PG = os.environ.get("TASKER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def w1(task_id: str) -> NewTask:
    steps = tuple(NewStep(n, CHAIN[i - 1:i] if i else (), CHAIN[i + 1:i + 2]) for i, n in enumerate(CHAIN))
    return NewTask(task_id, "bench", "w1", "1.0.0", {}, {}, steps)


def measure(url: str, n: int) -> tuple[float, float, int]:
    store = SqlStore(url, auto_upgrade=True)
    try:
        metrics = TransitionMetrics(store)
        metrics.start()
        now = 1000.0
        for start in range(0, n, 500):
            store.create_tasks([w1(str(uuid.uuid4())) for _ in range(min(500, n - start))], now)
        while claims := store.claim("w", 2000, now, 30):
            now += 1
            store.record([StepOutcome(c.task_id, c.step, "w", c.attempt, StepState.COMPLETE, now) for c in claims])
        with store.engine.connect() as conn:
            written = conn.execute(sa.text("SELECT count(*) FROM transitions")).scalar_one()
        started = time.perf_counter()
        metrics.refresh()
        fold = time.perf_counter() - started
        started = time.perf_counter()
        metrics.refresh()
        return fold, time.perf_counter() - started, written
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    for backend in args.backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                fold, empty, written = measure(f"sqlite:///{tmp}/bench.db", args.tasks)
        else:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(PG.replace("postgresql://", "postgresql+psycopg://", 1))
            with admin.begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            try:
                fold, empty, written = measure(f"{PG}?options=-csearch_path%3D{schema}", args.tasks)
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()
        print(f"{backend:8} {args.tasks} W1 tasks, {written} transitions: scrape {fold * 1000:.0f} ms "
              f"({written / fold:,.0f} transitions/s); a scrape with nothing new {empty * 1000:.1f} ms")


if __name__ == "__main__":
    main()
