"""A REAL server on loopback for the API tests: uvicorn in a thread on a free port (started when
its ``server.started`` flag is up and ``/health/live`` answers), driven with httpx.

Hosts use the installed team plugins (entry points) plus a tiny ``shared`` namespace plugin, a
fresh SQLite database, and a fast retry policy. Tokens are issued for real through
``tasker_host.tokens`` into ``host.tokens``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tasker_host.api import create_app
from tasker_host.engine.events import EventKind, LifecycleEvent
from tasker_host.engine.retry import RetryPolicy
from tasker_host.host import Host, build_host
from tasker_host.plugins import installed_entry_points
from tasker_host.settings import HostSettings
from tasker_host.store.base import TaskFilter
from tasker_host.store.sql.engine import upgrade
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc
from tasker_host.tokens import issue_token

PREFIX = "/tasker"
START_TIMEOUT = 10.0
FINAL = {EventKind.TASK_COMPLETED, EventKind.TASK_FAILED, EventKind.TASK_CANCELLED}
SEED_PAYMENTS = {
    "name": "process_refund", "namespace": "payments", "version": "2.1.3",
    "context": {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
                "partial_refund": False},
}
SEED_CUSTOMER_SUCCESS = {
    "name": "process_refund", "namespace": "customer_success", "version": "1.3.3",
    "context": {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
                "refund_reason": "Product defective", "agent_notes": "Customer very upset, expedite refund",
                "requires_approval": True},
}


def shared_entry_point() -> FakeEntryPoint:
    """A tiny plugin owning the ``shared`` namespace: one template, one no-op step."""
    plugin = make_plugin(namespaces=["shared"], handlers={"Noop": NoopHandler},
                         templates=[template_doc("shared", "ping", "1.0.0",
                                                 steps=[{"name": "only_step", "handler_class": "Noop"}])])
    return FakeEntryPoint.of("shared", plugin, dist="tasker-shared")


def make_host(db: Path | str, entry_points: list[Any] | None = None, **settings: Any) -> Host:
    """A host on a SQLite file (a Path) or a database URL (a str; upgraded first)."""
    eps = [*installed_entry_points(), shared_entry_point()] if entry_points is None else entry_points
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    if isinstance(db, str):
        upgrade(url)
    return build_host(HostSettings(database_url=url, **settings), entry_points=eps,
                      policy=RetryPolicy(base_seconds=0.01, jitter=0.0))


class TaskWaiter:
    """Waits (on events, not by polling) until tasks reach a final state."""

    def __init__(self, host: Host):
        self._cond = threading.Condition()
        self._seen: dict[str, list[EventKind]] = defaultdict(list)
        self.unsubscribe = host.events.subscribe(self._on_event)

    def _on_event(self, event: LifecycleEvent) -> None:
        if event.kind in FINAL:
            with self._cond:
                self._seen[event.task_id].append(event.kind)
                self._cond.notify_all()

    def wait(self, task_id: str, count: int = 1, timeout: float = 15.0) -> EventKind:
        """The ``count``-th final event of ``task_id``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._seen[task_id]) >= count, timeout):
                raise AssertionError(f"task {task_id} did not reach a final state {count} time(s) in {timeout}s")
            return self._seen[task_id][count - 1]


class _SignallingServer(uvicorn.Server):
    """A uvicorn server that sets ``up`` once it listens (no polling for it)."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        self.up.set()


class ServerThread:
    """uvicorn on 127.0.0.1:<free port> in a thread; ``stop()`` shuts it down gracefully."""

    def __init__(self, app: Any):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", log_level="warning")
        self.server = _SignallingServer(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.server.up.set()  # also when it failed to start: start() then reports it

    def start(self) -> None:
        self.thread.start()
        if not self.server.up.wait(START_TIMEOUT) or not self.server.started:
            raise RuntimeError("the API server did not start")
        assert httpx.get(f"http://127.0.0.1:{self.port}{PREFIX}/health/live", timeout=5).status_code == 200

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=START_TIMEOUT)
        self.sock.close()


@dataclass
class Live:
    host: Host
    server: ServerThread
    client: httpx.Client
    waiter: TaskWaiter
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}{PREFIX}"

    def auth(self, who: str, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **headers}

    def create(self, body: dict[str, Any], who: str = "admin", **headers: str) -> httpx.Response:
        return self.client.post("/tasks", json=body, headers=self.auth(who, **headers))

    def rows(self) -> list[str]:
        return [t.id for t in self.host.store.list_tasks(TaskFilter(limit=100_000))]


def issue_standard_tokens(host: Host) -> dict[str, str]:
    now = time.time()
    grants = {"payments": ["payments"], "cs": ["customer_success"], "payments_viewer": ["payments:view"],
              "inventory": ["inventory"]}
    tokens = {name: issue_token(host.tokens, name, grants=g, now=now).token for name, g in grants.items()}
    tokens["admin"] = issue_token(host.tokens, "admin", admin=True, now=now).token
    tokens["revoked"] = issue_token(host.tokens, "revoked", admin=True, now=now).token
    host.tokens.revoke_token("revoked", now)
    return tokens


@contextmanager
def live_server(host: Host, **options: Any) -> Iterator[Live]:
    """``host`` served on loopback (``create_app`` options) until the block ends; stopping the
    server closes the host."""
    tokens = issue_standard_tokens(host)
    waiter = TaskWaiter(host)
    server = ServerThread(create_app(host, prefix=PREFIX, **options))
    server.start()
    # a new connection per request: a kept-alive one between two threads of one process waits
    # ~40 ms per request (delayed ACK); it is the harness, not the server (a separate process: ~2 ms)
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}{PREFIX}", timeout=10,
                          limits=httpx.Limits(max_keepalive_connections=0))
    try:
        yield Live(host, server, client, waiter, tokens)
    finally:
        client.close()
        server.stop()
        waiter.unsubscribe()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Live]]:
    """Start servers for this module: ``serve(run_worker=True, host=None, **app_options)``."""
    with ExitStack() as started:
        def start(*, host: Host | None = None, **options: Any) -> Live:
            host = host or make_host(tmp_path_factory.mktemp("api") / "t.db")
            return started.enter_context(live_server(host, **options))

        yield start


@pytest.fixture(scope="module")
def live(serve: Callable[..., Live]) -> Live:
    """The module's server: installed plugins + ``shared``, the engine running."""
    return serve()
