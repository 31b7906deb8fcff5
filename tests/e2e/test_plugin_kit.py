"""A fifth team ships its first plugin: the whole path in a fresh virtual environment.

The host and the three team plugins are installed from the session's wheels (the host's wheel
carries the scaffold as package data); then, timed from the first command to the completed task:
``tasker-host new-plugin`` → ``pip install -e 'DIR[test]'`` → the generated project's own pytest
→ ``tasker-host check`` (against the three installed plugins) → ``tasker-host run`` of the new
workflow on SQLite. The time is printed (it excludes creating the venv).
"""

from __future__ import annotations

import json
import time

import pytest

CONTEXT = {"request_id": "req-42"}
PYTEST_TIMEOUT = 300  # a safety net, not a wait


@pytest.mark.e2e
def test_a_new_team_goes_from_new_plugin_to_a_completed_task(make_venv, wheelhouse, sandbox, tmp_path,
                                                             capsys):
    venv = make_venv("kit", list(wheelhouse.values()))
    project, database = tmp_path / "shipping", f"sqlite:///{tmp_path / 'tasks.db'}"
    laps: dict[str, float] = {}
    started = lap = time.perf_counter()

    def mark(stage: str) -> None:
        nonlocal lap
        now = time.perf_counter()
        laps[stage], lap = now - lap, now

    created = venv.cli_json("new-plugin", "shipping", "--namespace", "shipping", "--owner", "Shipping team",
                            "--directory", str(project))
    mark("new-plugin")
    venv.pip("install", "--quiet", "-e", f"{project}[test]")
    mark("pip install -e")
    tests = sandbox.run([venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", project],
                        timeout=PYTEST_TIMEOUT, path_first=venv.path / "bin")
    mark("pytest")
    check = venv.cli_json("check", str(project))
    mark("check")
    task = venv.cli_json("--database-url", database, "run", created["workflow"], "--context",
                         json.dumps(CONTEXT))
    mark("run")
    elapsed = time.perf_counter() - started

    assert created["workflow"] == "shipping.shipping@1.0.0", created
    assert tests.returncode == 0 and "7 passed" in tests.stdout, venv.describe(tests)
    assert check["ok"] is True and check["problems"] == [], check
    assert check["templates"] == ["shipping.shipping@1.0.0"], check
    assert "checked against 3 other installed plugin distribution(s)" in check["notes"], check
    assert (task["full_name"], task["status"]) == ("shipping.shipping@1.0.0", "complete"), task
    assert {s["name"]: s["results"] for s in task["steps"]} == {
        "validate_request": {"request_id": "req-42", "accepted": True},
        "record_result": {"request_id": "req-42", "reference": "REF-req-42"}}, task["steps"]

    listed = {d["distribution"]: d for d in venv.cli_json("plugins")["distributions"]}
    assert listed["tasker-shipping"]["namespaces"] == ["shipping"], listed
    assert listed["tasker-shipping"]["entry_points"] == ["shipping = tasker_shipping.plugin"], listed
    installed = venv.distribution("tasker-shipping")
    assert installed["direct_url"]["dir_info"] == {"editable": True}, installed

    with capsys.disabled():
        print(f"\nnew-plugin → completed task: {elapsed:.1f} s  ("
              + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in laps.items()) + ")")
