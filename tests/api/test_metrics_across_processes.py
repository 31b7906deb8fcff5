"""/metrics derives task and step numbers from the store's transitions: a server whose own engine
runs nothing still counts the work another process's engine did in the shared database (SQLite
file, PostgreSQL), and shows each token only the namespaces it may view."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tasker_host.host import Host

from .conftest import SEED_PAYMENTS, live_server, make_host
from .test_health_metrics import INVENTORY_RETURN, samples

PAYMENTS = (("namespace", "payments"), ("template", "process_refund"), ("version", "2.1.3"))
INVENTORY = (("namespace", "inventory"), ("template", "process_return"), ("version", "1.4.0"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    yield tmp_path / "shared.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def labelled(*labels: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels))


def test_a_server_counts_the_work_another_process_ran(database: str | Path) -> None:
    server_host, worker_host = make_host(database), make_host(database)
    try:
        _run_elsewhere(server_host, worker_host)
    finally:
        worker_host.close()


def _run_elsewhere(server_host: Host, worker_host: Host) -> None:
    with live_server(server_host, run_worker=False) as live:  # this process runs no step
        refund = copy.deepcopy(SEED_PAYMENTS)
        refund["context"]["simulate"] = {"validate_payment_eligibility": ["unavailable", "ok"]}
        assert live.create(refund).status_code == 201
        worker_host.service.create_task("inventory", "process_return", "1.4.0", INVENTORY_RETURN["context"])
        anyio.run(worker_host.engine.run_until_idle)  # "the other process": both tasks, the child too
        found = samples(live, "admin")
        assert found[("tasker_tasks_created_total", PAYMENTS)] == 2  # the refund and inventory's child
        assert found[("tasker_tasks_completed_total", PAYMENTS)] == 2
        assert found[("tasker_tasks_started_total", INVENTORY)] == 1
        assert found[("tasker_tasks_completed_total", INVENTORY)] == 1
        step = ("step", "validate_payment_eligibility")
        assert found[("tasker_step_retries_total", labelled(*PAYMENTS, step))] == 1
        assert found[("tasker_step_duration_seconds_count", labelled(*PAYMENTS, step, ("outcome", "retry")))] == 1
        assert found[("tasker_step_duration_seconds_count", labelled(*PAYMENTS, step, ("outcome", "complete")))] == 2
        assert found[("tasker_step_attempts_sum", labelled(*PAYMENTS, step))] == 3  # 2 + 1
        assert found[("tasker_step_queue_wait_seconds_count", INVENTORY)] >= 1
        call = (("caller_namespace", "inventory"), ("namespace", "payments"))
        assert found[("tasker_invocations_total", call)] == 1
        payments = samples(live, "payments")  # a payments token: its own series and calls into it
        assert payments[("tasker_tasks_completed_total", PAYMENTS)] == 2
        assert ("tasker_tasks_completed_total", INVENTORY) not in payments
        assert payments[("tasker_invocations_total", call)] == 1
        assert samples(live, "admin")[("tasker_tasks_completed_total", PAYMENTS)] == 2  # counted once
