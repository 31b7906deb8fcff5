"""Database outages: how a `worker` and an API node (`serve --no-worker`) on PostgreSQL ride out a
database that refuses every connection for a while, and how fast work flows again after.

    python bench/outage_bench.py                   # 3 outages of 5 s
    python bench/outage_bench.py --rounds 5 --outage 10

A throwaway database (``tasker_outage_bench``) is made on the server named by
``TASKER_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``), so nothing
else on the server is touched. A feeder creates a refund through the API every 20 ms (each with
an ``Idempotency-Key``, repeated on 503 as a client following docs/api.md would). Per round, the
outage: ``ALTER DATABASE ... ALLOW_CONNECTIONS false`` and every backend of the database
terminated — to tasker-host it is a server that went away; after ``--outage`` seconds,
connections are allowed again. Figures per round:

* *recovery*: connections allowed again -> the first step completed after it (the worker's
  backoff, its reconnection and its first commit);
* *API*: answers during the outage by status (503 ``database_unavailable`` expected; never 500),
  and the first 201 after it;
* at the end: every acknowledged refund completed, one task per key, both processes alive.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa

BIN = Path(sys.executable).parent / "tasker-host"
DB = "tasker_outage_bench"
BODY = {"namespace": "payments", "name": "process_refund", "version": "2.1.3",
        "context": {"payment_id": "pay_1", "refund_amount": 4999}}


def server_url() -> sa.URL:
    return sa.make_url(os.environ.get("TASKER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))


def admin(sql: str) -> None:
    engine = sa.create_engine(server_url().set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool,
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def cut(allow: bool) -> None:
    admin(f"ALTER DATABASE {DB} WITH ALLOW_CONNECTIONS {'true' if allow else 'false'}")
    if not allow:
        admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{DB}'")


def db_url() -> str:
    return server_url().set(database=DB).render_as_string(hide_password=False)


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TASKER_DATABASE_URL": db_url()}
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, check=True, **kw)


class Feeder(threading.Thread):
    """Creates refunds through the API, each with its own key, repeated on 503 until acknowledged."""

    def __init__(self, base: str, token: str):
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.statuses: list[tuple[float, int]] = []
        self.acknowledged: dict[str, str] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            key = uuid.uuid4().hex
            while not self.stop.is_set():
                try:
                    response = self.client.post("/tasks", json=BODY, headers={"Idempotency-Key": key})
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0  # a reset connection: must never happen
                self.statuses.append((time.time(), status))
                if status in (200, 201):
                    self.acknowledged[key] = response.json()["id"]
                    break
                time.sleep(0.05)
            time.sleep(0.02)


def last_completion(conn: sa.Connection) -> float:
    return conn.execute(sa.text("SELECT coalesce(max(completed_at), 0) FROM steps")).scalar_one()


def first_completion_after(t: float, timeout: float = 60.0) -> float:
    engine = sa.create_engine(db_url(), poolclass=sa.pool.NullPool)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            with engine.connect() as conn:
                if (done := last_completion(conn)) > t:
                    return done
            time.sleep(0.01)
    finally:
        engine.dispose()
    raise SystemExit("no step completed after the outage")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds the database refuses connections")
    args = parser.parse_args()
    admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    admin(f"CREATE DATABASE {DB}")
    cli("db", "upgrade")
    token = cli("tokens", "create", "--name", "bench", "--admin").stdout.strip().splitlines()[-1]
    env = {**os.environ, "TASKER_DATABASE_URL": db_url()}
    port = 18000 + os.getpid() % 1000
    logs = {name: open(f"/tmp/outage_bench_{name}.log", "w") for name in ("worker", "api")}
    worker = subprocess.Popen([str(BIN), "worker"], env=env, stderr=logs["worker"], stdout=subprocess.DEVNULL)
    api = subprocess.Popen([str(BIN), "serve", "--no-worker", "--port", str(port), "--log-level", "warning"],
                           env=env, stderr=logs["api"], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/tasker"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/health/live").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    feeder = Feeder(base, token)
    feeder.start()
    recoveries, during = [], Counter()
    try:
        for _ in range(args.rounds):
            time.sleep(2.0)  # work flowing
            began = time.time()
            cut(allow=False)
            time.sleep(args.outage)
            cut(allow=True)
            back = time.time()
            recoveries.append(first_completion_after(back) - back)
            during.update(s for t, s in feeder.statuses if began <= t <= back)
        time.sleep(2.0)
        feeder.stop.set()
        feeder.join()
        assert worker.poll() is None and api.poll() is None, "a process exited"
        engine = sa.create_engine(db_url(), poolclass=sa.pool.NullPool)
        deadline = time.time() + 60
        while True:
            with engine.connect() as conn:
                left = conn.execute(sa.text("SELECT count(*) FROM tasks WHERE status <> 'complete'")).scalar_one()
                keys = conn.execute(sa.text("SELECT count(DISTINCT idempotency_key), count(*) FROM tasks")).one()
            if not left or time.time() > deadline:
                break
            time.sleep(0.1)
        engine.dispose()
    finally:
        for proc in (worker, api):
            proc.terminate()
            proc.wait(30)
    all_statuses = Counter(s for _, s in feeder.statuses)
    print(f"outages: {args.rounds} x {args.outage:g} s; requests: {dict(all_statuses)}; during outages: {dict(during)}")
    print(f"recovery (connections allowed -> first step completed): "
          f"median {statistics.median(recoveries):.2f} s, max {max(recoveries):.2f} s "
          f"({', '.join(f'{r:.2f}' for r in recoveries)})")
    print(f"acknowledged {len(feeder.acknowledged)}; tasks {keys[1]} with {keys[0]} distinct keys; "
          f"not complete at the end: {left}; worker exit {worker.returncode}, api exit {api.returncode}")
    outages = Path("/tmp/outage_bench_worker.log").read_text().count("database unavailable (")
    print(f"worker log: {outages} outage lines")
    admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
