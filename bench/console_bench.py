"""Console page timings with many tasks in the database, on SQLite and PostgreSQL.

    PYTHONPATH=. python bench/console_bench.py                 # 100,000 tasks, both backends
    PYTHONPATH=. python bench/console_bench.py --tasks 10000 --backends sqlite --explain

Seeds N tasks (half payments.refund, half customer_success.escalate_ticket; 90 % complete, 9 %
error, 1 % pending, one a second apart) through ``Store.create_tasks`` in batches, then an UPDATE
of the statuses; PostgreSQL is ANALYZEd. Each page is fetched in-process over ASGI
(``httpx.ASGITransport``: the server's work, no network) as the admin and as the payments team,
``--runs`` times; the median and worst are printed (ms). ``--explain`` prints the query plans of
the pages' heavy statements. Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasker_host.api import create_app  # noqa: E402
from tests.console.support import Plan, issue, make_host  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 2000


def seed(host: Any, n: int) -> dict[str, str]:
    svc, store = host.service, host.store
    t0 = time.time() - n
    for start in range(0, n, BATCH):
        batch = []
        for i in range(start, min(n, start + BATCH)):
            ns, name = ("payments", "refund") if i % 2 else ("customer_success", "escalate_ticket")
            batch.append(svc.prepare(ns, name, None, {"order": f"ord-{i}", "amount": i % 997},
                                     correlation_id=f"corr-{i}"))
        store.create_tasks(batch, t0 + start)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE tasks SET status = 'complete'"))
        conn.execute(sa.text("UPDATE tasks SET status = 'error' WHERE correlation_id LIKE '%0' AND "
                             "correlation_id NOT LIKE '%00'"))  # 9 %: close enough to 5-10 %
        conn.execute(sa.text("UPDATE tasks SET status = 'pending' WHERE correlation_id LIKE '%00'"))
    if store.dialect == "postgresql":  # as autovacuum would after the bulk UPDATEs (index-only scans need it)
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE tasks, steps")
    newest = store.list_tasks(_filter(limit=1))[0]
    return {"task": newest.id}


def _filter(**kw: Any) -> Any:
    from tasker_host.store.base import TaskFilter
    return TaskFilter(newest_first=True, **kw)


async def measure(host: Any, tokens: dict[str, str], ids: dict[str, str], runs: int) -> dict[str, list[float]]:
    app = create_app(host, run_worker=False)
    timings: dict[str, list[float]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for who in ("admin", "payments"):
            client.cookies.clear()
            form = await client.get("/ui/sign-in")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            await client.post("/ui/sign-in", data={"token": tokens[who], "csrf_token": csrf})
            first = await client.get("/ui/tasks")
            older = re.search(r'<a href="([^"]+)" rel="next">', first.text).group(1).replace("&amp;", "&")
            pages = {"namespaces": "/ui/", "tasks": "/ui/tasks", "tasks page 2": older,
                     "tasks status=error": "/ui/tasks?status=error",
                     "tasks namespace+template": "/ui/tasks?namespace=payments&name=refund",
                     "tasks correlation id": "/ui/tasks?correlation=corr-4999",
                     "tasks context text": "/ui/tasks?q=ord-4999%22", "task": f"/ui/tasks/{ids['task']}",
                     "versions": "/ui/versions", "plugins": "/ui/plugins"}
            for label, path in pages.items():
                for _ in range(runs):
                    started = time.perf_counter()
                    response = await client.get(path)
                    elapsed = (time.perf_counter() - started) * 1e3
                    if response.status_code not in (200, 404):
                        raise SystemExit(f"{path}: {response.status_code}")
                    timings.setdefault(f"{label} ({who})", []).append(elapsed)
    return timings


def explain(host: Any) -> None:
    store = host.store
    prefix = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    statements = {
        "task list, newest first (payments)": "SELECT id FROM tasks WHERE namespace IN ('payments') "
                                              "ORDER BY created_at DESC, id DESC LIMIT 51",
        "task list, status=error":
            "SELECT id FROM tasks WHERE status = 'error' ORDER BY created_at DESC, id DESC LIMIT 51",
        "counts by namespace and status": "SELECT namespace, status, count(*) FROM tasks GROUP BY namespace, status",
        "versions": "SELECT namespace, name, version, status, count(*), max(created_at) FROM tasks "
                    "GROUP BY namespace, name, version, status",
        "context text": "SELECT id FROM tasks WHERE CAST(context AS TEXT) LIKE '%ord-4999\"%' "
                        "ORDER BY created_at DESC, id DESC LIMIT 51",
    }
    with store.engine.connect() as conn:
        for label, sql in statements.items():
            rows = [" | ".join(str(c) for c in r) for r in conn.execute(sa.text(prefix + sql))]
            print(f"  {label}:\n    " + "\n    ".join(rows))


def run(backend: str, n: int, runs: int, show_plans: bool) -> None:
    plan = Plan()
    workdir = Path(tempfile.mkdtemp())
    schema = None
    if backend == "sqlite":
        db: Any = workdir / "bench.db"
    else:
        schema = f"console_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                                 poolclass=sa.pool.NullPool)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        db = f"{PG_URL}?options=-csearch_path%3D{schema}"
    host = make_host(db, plan)
    try:
        tokens = issue(host)
        started = time.perf_counter()
        ids = seed(host, n)
        print(f"{backend}: {n} tasks seeded in {time.perf_counter() - started:.1f} s")
        timings = anyio.run(measure, host, tokens, ids, runs)
        print(f"  {'page':<44} {'median ms':>10} {'max ms':>8}")
        for label, values in timings.items():
            print(f"  {label:<44} {statistics.median(values):>10.1f} {max(values):>8.1f}")
        if show_plans:
            explain(host)
    finally:
        host.close()
        if schema is not None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        run(backend.strip(), args.tasks, args.runs, args.explain)


if __name__ == "__main__":
    main()
