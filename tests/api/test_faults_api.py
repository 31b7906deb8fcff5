"""The fault suite, API half: a real server on PostgreSQL whose backends are terminated
(``pg_terminate_backend``) between requests. Creations and reads answer 201/200 or
``503 database_unavailable`` with ``Retry-After`` — never a 500 or a reset connection; a creation
repeated with its ``Idempotency-Key`` is made exactly once; the server's own engine keeps running
every acknowledged task to completion without a restart."""

from __future__ import annotations

from collections import Counter

import pytest

from tasker_host.engine.events import EventKind
from tasker_host.store.base import TaskFilter
from tests.api.conftest import SEED_PAYMENTS, live_server, make_host
from tests.fault_support import Terminator, with_application_name

pytestmark = pytest.mark.postgres
ROUNDS = 30


def create_until_acknowledged(live, body: dict, key: str, statuses: Counter) -> dict:
    """POST until acknowledged, as a client following the docs would (same key every time)."""
    for _ in range(20):
        response = live.create(body, **{"Idempotency-Key": key})
        statuses[response.status_code] += 1
        if response.status_code != 503:
            assert response.status_code in (200, 201), response.text
            return response.json()
        assert response.json()["error"] == "database_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
    raise AssertionError(f"{key}: still 503 after 20 tries")


def test_creates_and_reads_while_backends_are_terminated(postgres_url, postgres_server_url):
    url, name = with_application_name(postgres_url)
    terminate = Terminator(postgres_server_url, name)
    host = make_host(url)
    statuses: Counter[int] = Counter()
    acknowledged: dict[str, str] = {}
    # tokens cached: the creation itself meets the dead connection (an uncached token's read
    # would meet it first, and reads are repeated on a fresh connection)
    with live_server(host, token_cache_seconds=300) as live:
        for i in range(ROUNDS):
            if i % 2 == 0:
                terminate()
            key = f"refund-{i}"
            body = {**SEED_PAYMENTS, "context": {**SEED_PAYMENTS["context"], "payment_id": f"pay_{i}"}}
            acknowledged[key] = create_until_acknowledged(live, body, key, statuses)["id"]
            if i % 3 == 0:
                terminate()
            read = live.client.get(f"/tasks/{acknowledged[key]}", headers=live.auth("admin"))
            statuses[read.status_code] += 1
            assert read.status_code in (200, 503), read.text
        for task_id in acknowledged.values():
            assert live.waiter.wait(task_id, timeout=60) is EventKind.TASK_COMPLETED
        rows = host.store.list_tasks(TaskFilter(limit=10_000))
    terminate.close()
    assert terminate.killed >= ROUNDS  # every round really cut connections
    assert not {s for s in statuses if s >= 500} - {503}, statuses
    assert statuses[503] >= 1  # the outage was met, and answered as documented
    keyed = Counter(t.idempotency_key for t in rows)
    assert keyed == Counter(dict.fromkeys(acknowledged, 1))  # one task per key, none lost
    assert host.engine.outage.incidents >= 1 and not host.engine.outage.active
