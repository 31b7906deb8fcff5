"""``POST /tasks`` under load: one `tasker-host serve` process, a separate load process (wrk) on
loopback with 50 concurrent connections, authenticated and schema-validated requests (the seed's
payments refund). Reports created tasks/s and latency percentiles, on SQLite and PostgreSQL.

    python bench/api_bench.py --seconds 15 --runs 3             # API node (serve --no-worker)
    python bench/api_bench.py --seconds 15 --runs 3 --worker    # serve with the engine too

Needs wrk (Debian: apt-get install wrk). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "tasker-host"
PG_URL = os.environ.get("TASKER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BODY = {"name": "process_refund", "namespace": "payments", "version": "2.1.3",
        "context": {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
                    "partial_refund": False}}


def database(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'api.db'}"
    import psycopg

    schema = f"tasker_api_bench_{os.getpid()}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def cli(url: str, *args: str) -> str:
    env = {**os.environ, "TASKER_DATABASE_URL": url}
    return subprocess.run([str(BIN), *args], env=env, check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_live(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # waiting for a server to listen, not for work
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def wrk(port: int, token: str, seconds: int, tmp: Path) -> dict:
    script = tmp / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.headers["Authorization"] = "Bearer {token}"\nwrk.body = {json.dumps(json.dumps(BODY))}\n')
    out = subprocess.run(["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}/tasker/tasks"], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"some requests failed:\n{out}")
    ms = {p: _ms(re.search(rf"^\s+{p}%\s+(\S+)", out, re.MULTILINE).group(1)) for p in ("50", "90", "99")}
    return {"rps": float(re.search(r"Requests/sec:\s+(\S+)", out).group(1)), **{f"p{k}": v for k, v in ms.items()}}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def measure(backend: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url = database(backend, tmp)
        cli(url, "db", "upgrade")
        token = cli(url, "tokens", "create", "--name", "bench", "--admin").strip().splitlines()[-1]
        port = free_port()
        cmd = [str(BIN), "serve", "--port", str(port), "--log-level", "warning"]
        if not args.worker:
            cmd.append("--no-worker")
        server = subprocess.Popen(cmd, env={**os.environ, "TASKER_DATABASE_URL": url})
        try:
            wait_live(port)
            wrk(port, token, 3, tmp)  # warm-up
            runs = [wrk(port, token, args.seconds, tmp) for _ in range(args.runs)]
        finally:
            server.terminate()
            server.wait(30)
            if backend == "postgres":
                import psycopg

                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "tasker_api_bench_{os.getpid()}" CASCADE')
        return {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--worker", action="store_true", help="serve with the engine in the same process")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    mode = "serve (API + engine)" if args.worker else "serve --no-worker (API node)"
    print(f"POST /tasks, 50 connections, {args.seconds}s x {args.runs} runs (medians), {mode}, {os.cpu_count()} cpus")
    print(f"{'backend':<10}{'tasks/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}   target: >= 1000/s, p99 <= 50 ms")
    for backend in args.backends:
        r = measure(backend, args)
        ok = "PASS" if r["rps"] >= 1000 and r["p99"] <= 50 else "FAIL"
        print(f"{backend:<10}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p90']:>9.1f}{r['p99']:>9.1f}   {ok}")


if __name__ == "__main__":
    main()
