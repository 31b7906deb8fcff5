"""The ``probe`` plugin of ``test_multiprocess.py``: written as ``tasker_probe.py`` beside a
dist-info into a directory on the workers' ``PYTHONPATH`` (never imported by pytest itself).

One namespace, ``probe``, with one workflow ``probe.fanout@1.0.0``: ``start`` -> ``branch_a`` /
``branch_b`` / ``branch_c`` -> ``join`` -> ``finish``. Every step runs :class:`ProbeHandler`, which
records in PostgreSQL (``PROBE_DATABASE_URL``, a plain libpq URL) who runs what:

* on entry it inserts ``probe_running(task_id, step)``; if a row is already there, its holder's pid
  decides: a dead holder (the SIGKILLed worker) is a legitimate takeover after its lease expired
  (``probe_takeovers``, kind ``running``, and the row becomes ours); a live holder means two workers
  ran the step at once (``probe_overlaps``);
* it sleeps ``PROBE_STEP_SECONDS`` (so a kill lands mid-step), then deletes its row (a row no longer
  ours is an overlap too) and inserts ``probe_done(task_id, step)``; a second completion finished by
  a dead worker (which died before the engine recorded it) is a takeover of kind ``done``, by a live
  one an overlap.

The handler never raises because of what it observed: the test reads the tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from tasker_host import Namespace, StepHandler, hookimpl

NAMESPACE = "probe"
PID = os.getpid()
STEPS = [
    {"name": "start"},
    *({"name": f"branch_{x}", "depends_on_step": "start"} for x in "abc"),
    {"name": "join", "depends_on_steps": ["branch_a", "branch_b", "branch_c"]},
    {"name": "finish", "depends_on_step": "join"},
]
TEMPLATE = {
    "name": "fanout", "namespace_name": NAMESPACE, "version": "1.0.0",
    "description": "start, a fan-out of three branches, a join and a final step",
    "step_templates": [{**s, "handler_class": "Probe", "default_retry_limit": 5,
                        "handler_config": {"timeout_seconds": 30}} for s in STEPS],
}


@hookimpl
def tasker_namespaces() -> list[Namespace]:
    return [Namespace(NAMESPACE, description="Multi-process scale probe", owner="tasker-host tests")]


@hookimpl
def tasker_templates() -> list[Any]:
    return [TEMPLATE]


@hookimpl
def tasker_step_handlers() -> dict[str, type[StepHandler]]:
    return {"Probe": ProbeHandler}


# --- a few autocommit connections per process, shared by the steps ------------------------------
_idle: list[psycopg.AsyncConnection] = []
_slots: asyncio.Semaphore | None = None


@contextlib.asynccontextmanager
async def _connection() -> AsyncIterator[psycopg.AsyncConnection]:
    global _slots
    _slots = _slots or asyncio.Semaphore(4)
    async with _slots:
        conn = _idle.pop() if _idle else await psycopg.AsyncConnection.connect(
            os.environ["PROBE_DATABASE_URL"], autocommit=True)
        try:
            yield conn
        except BaseException:
            await conn.close()
            raise
        _idle.append(conn)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _holder(conn: psycopg.AsyncConnection, table: str, key: tuple[str, str]) -> int | None:
    cur = await conn.execute(f"SELECT worker_pid FROM {table} WHERE task_id = %s AND step = %s FOR UPDATE", key)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def _overlap(conn: psycopg.AsyncConnection, key: tuple[str, str], kind: str, holder: int | None) -> None:
    await conn.execute("INSERT INTO probe_overlaps (task_id, step, kind, holder_pid, worker_pid, at) "
                       "VALUES (%s, %s, %s, %s, %s, %s)", (*key, kind, holder, PID, time.time()))


async def _judge(conn: psycopg.AsyncConnection, key: tuple[str, str], kind: str, holder: int | None,
                 started: float) -> bool:
    """Record a takeover from a dead ``holder`` (True), or else an overlap with a live one."""
    if holder is None or _alive(holder):
        await _overlap(conn, key, kind, holder)
        return False
    await conn.execute("INSERT INTO probe_takeovers (task_id, step, kind, old_pid, new_pid, started_at) "
                       "VALUES (%s, %s, %s, %s, %s, %s)", (*key, kind, holder, PID, started))
    return True


async def _enter(conn: psycopg.AsyncConnection, key: tuple[str, str], started: float) -> None:
    async with conn.transaction():
        cur = await conn.execute("INSERT INTO probe_running (task_id, step, worker_pid, started_at) "
                                 "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", (*key, PID, started))
        if cur.rowcount == 1:
            return
        if await _judge(conn, key, "running", await _holder(conn, "probe_running", key), started):
            await conn.execute("UPDATE probe_running SET worker_pid = %s, started_at = %s "
                               "WHERE task_id = %s AND step = %s", (PID, started, *key))


async def _leave(conn: psycopg.AsyncConnection, key: tuple[str, str], started: float) -> None:
    async with conn.transaction():
        cur = await conn.execute("DELETE FROM probe_running WHERE task_id = %s AND step = %s AND worker_pid = %s",
                                 (*key, PID))
        if cur.rowcount == 0:  # another worker took our row while we ran
            await _overlap(conn, key, "lost_row", await _holder(conn, "probe_running", key))
        cur = await conn.execute("INSERT INTO probe_done (task_id, step, worker_pid, started_at, finished_at) "
                                 "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                 (*key, PID, started, time.time()))
        if cur.rowcount == 0:
            await _judge(conn, key, "done", await _holder(conn, "probe_done", key), started)


class ProbeHandler(StepHandler):
    async def process(self, ctx: Any) -> dict[str, Any]:
        key, started = (ctx.task.id, ctx.step_name), time.time()
        async with _connection() as conn:
            await _enter(conn, key, started)
        await asyncio.sleep(float(os.environ.get("PROBE_STEP_SECONDS", "0.03")))
        async with _connection() as conn:
            await _leave(conn, key, started)
        return {"pid": PID}
