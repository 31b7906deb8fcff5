"""``worker --until-idle`` as a real process: a line per transition in ``--log-format text`` and
``json``, and a closing tally; the SDK set up from OTEL_* variables (trace_setup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasker_host.errors import ConfigurationError
from tasker_host.trace_setup import exporters_wanted, tracer_provider_from_env

BIN = Path(sys.executable).parent / "tasker-host"
CONTEXT = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
           "partial_refund": False, "simulate": {"process_gateway_refund": ["unavailable", "ok"]}}
needs_bin = pytest.mark.skipif(not BIN.exists(), reason="tasker-host is not installed in this environment")


def cli(db: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), "--database-url", f"sqlite:///{db}", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def created(db: Path) -> str:
    done = cli(db, "run", "payments.process_refund@2.1.3", "--context", json.dumps(CONTEXT), "--detach", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["id"]


@needs_bin
def test_worker_until_idle_logs_json_lines_with_the_fields(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    task_id = created(db)
    worker = cli(db, "worker", "--until-idle", "--log-format", "json")
    assert worker.returncode == 0, worker.stderr
    lines = [json.loads(line) for line in worker.stderr.splitlines()]  # every line is one JSON object
    ours = [d for d in lines if d["logger"] == "tasker_host.transitions"]
    assert [d["event"] for d in ours][:3] == ["task.started", "step.started", "step.completed"]
    for d in ours:
        assert (d["task_id"], d["namespace"], d["template"], d["correlation_id"]) == (
            task_id, "payments", "process_refund@2.1.3", task_id)
    [retrying] = [d for d in ours if d["event"] == "step.retrying"]
    assert (retrying["level"], retrying["step"], retrying["attempt"], retrying["error_class"]) == (
        "warning", "process_gateway_refund", 1, "retryable")
    assert "unavailable" in retrying["error"]
    handler_lines = [d for d in lines if d["logger"] == "tasker_host.step"]
    assert handler_lines and all(d["task_id"] == task_id and "attempt" in d for d in handler_lines)
    assert lines[-1]["message"].startswith("worker stopped: 1 task started")


@needs_bin
def test_worker_until_idle_reads_as_text(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    task_id = created(db)
    worker = cli(db, "worker", "--until-idle")  # text is the worker's default
    assert worker.returncode == 0, worker.stderr
    said = worker.stderr.splitlines()
    assert f'msg="step validate_payment_eligibility of payments.process_refund@2.1.3 started (task {task_id[:8]}, ' \
           'attempt 1)"' in said[2]
    assert any("level=warning" in line and "retrying" in line and f"task_id={task_id}" in line for line in said)
    # --until-idle leaves the retry (its backoff has not elapsed) for a later run
    assert 'msg="worker stopped: 1 task started, 2 steps started, 1 step completed, 1 step retrying"' in said[-1]


@pytest.mark.parametrize(("env", "wanted"), [
    ({}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
    ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ["console", "otlp"]),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
])
def test_the_environment_decides_whether_traces_are_exported(env: dict, wanted: list) -> None:
    assert exporters_wanted(env) == wanted
    provider = tracer_provider_from_env(env)
    assert (provider is not None) == bool(wanted)
    if provider is not None:
        assert provider.resource.attributes["service.name"] == "tasker-host"
        provider.shutdown()


def test_an_unknown_exporter_or_protocol_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown exporter"):
        exporters_wanted({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ConfigurationError, match="not supported"):
        tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"})


def test_the_service_name_comes_from_the_standard_variable() -> None:
    provider = tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "payments-api"})
    try:
        assert provider.resource.attributes["service.name"] == "payments-api"
    finally:
        provider.shutdown()


def test_the_core_imports_only_the_opentelemetry_api() -> None:
    """A host, its API app and a run without OTEL_* variables never import the SDK."""
    code = ("import sys, anyio\n"
            "from tasker_host.host import build_host\n"
            "from tasker_host.api import create_app\n"
            "from tasker_host.settings import HostSettings\n"
            "from tasker_host.trace_setup import tracer_provider_from_env\n"
            "assert tracer_provider_from_env({}) is None\n"
            "host = build_host(HostSettings(database_url='memory'))\n"
            "create_app(host)\n"
            "host.service.create_task('payments', 'process_refund', '2.1.3', {'payment_id': 'p', 'refund_amount': 1})\n"
            "anyio.run(host.engine.run_until_idle)\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
