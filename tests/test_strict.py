"""Strict mode reports EVERYTHING wrong with the plugins in one go: every load failure, every
broken template and every conflict the host would refuse — in the error, in the CLI's text and
``--json``, and from a real process whose plugins are discovered through installed metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState
from tasker_host.errors import PluginLoadFailures
from tasker_host.host import build_host, load_catalog
from tasker_host.registry import ConflictPolicy
from tasker_host.settings import HostSettings
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc
from tasker_host.testing.entry_point_dir import write_plugin_dist

BROKEN_TEMPLATE = {"name": "daily", "namespace_name": "reports", "version": "1.0.0",
                   "step_templates": [{"name": "a", "handler_class": "Noop", "depends_on_step": "nowhere"}]}
STRICT = HostSettings(strict_plugins=True)


def everything_wrong() -> list[FakeEntryPoint]:
    """Two plugins that fail to import, one with a broken template, two that claim payments."""
    payments = make_plugin(["payments"], [template_doc("payments", "process_refund", "2.1.3")], {"Noop": NoopHandler})
    return [
        FakeEntryPoint.failing("alpha", ImportError("No module named 'tasker_alpha'"), dist="tasker-alpha"),
        FakeEntryPoint.failing("beta", RuntimeError("beta's settings are missing"), dist="tasker-beta"),
        FakeEntryPoint.of("reports", make_plugin(["reports"], [BROKEN_TEMPLATE], {"Noop": NoopHandler}),
                          dist="tasker-reports"),
        FakeEntryPoint.of("payments", payments, dist="tasker-payments", version="1.4.0"),
        FakeEntryPoint.of("rogue", make_plugin(["payments"]), dist="tasker-rogue", version="0.0.1"),
    ]


def assert_all_four(text: str) -> None:
    assert "tasker-alpha" in text and "No module named 'tasker_alpha'" in text
    assert "tasker-beta" in text and "beta's settings are missing" in text
    assert "tasker-reports" in text and "nowhere" in text
    assert "namespace_ownership: namespace payments" in text
    assert "tasker-payments 1.4.0" in text and "tasker-rogue 0.0.1" in text


def test_one_error_lists_every_failure_broken_template_and_conflict() -> None:
    with pytest.raises(PluginLoadFailures) as info:
        load_catalog(STRICT, entry_points=everything_wrong())
    error = info.value
    assert sorted((f.distribution, f.stage) for f in error.failures) == [
        ("tasker-alpha", "import"), ("tasker-beta", "import"), ("tasker-reports", "template")]
    [conflict] = error.conflicts
    assert {p.distribution for p in conflict.providers} == {"tasker-payments", "tasker-rogue"}
    assert str(error).startswith("3 plugin failure(s) and 1 conflict(s)")
    assert_all_four(str(error))
    with pytest.raises(PluginLoadFailures) as again:  # the host refuses with the same report
        build_host(HostSettings(strict_plugins=True, database_url="memory"), entry_points=everything_wrong())
    assert str(again.value) == str(error)


def test_under_quarantine_strict_still_lists_every_failure_but_not_the_tolerated_conflict() -> None:
    settings = HostSettings(strict_plugins=True, on_conflict=ConflictPolicy.QUARANTINE)
    with pytest.raises(PluginLoadFailures) as info:
        load_catalog(settings, entry_points=everything_wrong())
    assert len(info.value.failures) == 3 and info.value.conflicts == ()


def test_without_failures_strict_leaves_conflicts_to_the_conflict_policy() -> None:
    loaded = load_catalog(STRICT, entry_points=everything_wrong()[3:])  # only the two payments owners
    assert len(loaded.registry.conflicts) == 1 and loaded.failures == []


def cli(*args: str, entry_points: list[FakeEntryPoint]):
    return CliRunner().invoke(build_cli(), list(args), obj=CliState(entry_points=entry_points))


@pytest.mark.parametrize("command", [["plugins"], ["handlers"], ["resolve", "payments.process_refund"]])
def test_the_cli_exits_1_printing_all_four(command: list[str]) -> None:
    result = cli("--strict", *command, entry_points=everything_wrong())
    assert result.exit_code == 1
    assert_all_four(result.stderr)


def test_the_cli_json_lists_all_four() -> None:
    result = cli("--strict", "plugins", "--json", entry_points=everything_wrong())
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["error"] == "PluginLoadFailures"
    assert sorted(f["distribution"] for f in doc["failures"]) == ["tasker-alpha", "tasker-beta", "tasker-reports"]
    assert [c["kind"] for c in doc["conflicts"]] == ["namespace_ownership"]
    assert_all_four(doc["message"])


def test_without_strict_plugins_reports_the_failures_and_exits_1() -> None:
    result = cli("--on-conflict", "quarantine", "plugins", "--json", entry_points=everything_wrong()[:3])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and len(doc["failures"]) == 3


BROKEN_IMPORT = "raise ImportError('tasker_{name} needs a module that is not installed')\n"
REPORTS = f"""
from tasker_host import hookimpl
from tasker_host.testing import NoopHandler

class plugin:
    @staticmethod
    @hookimpl
    def tasker_namespaces():
        return ["reports"]

    @staticmethod
    @hookimpl
    def tasker_templates():
        return [{BROKEN_TEMPLATE!r}]

    @staticmethod
    @hookimpl
    def tasker_step_handlers():
        return {{"Noop": NoopHandler}}
"""
ROGUE = """
from tasker_host import hookimpl

class plugin:
    @staticmethod
    @hookimpl
    def tasker_namespaces():
        return ["payments"]
"""


def test_a_real_process_reports_all_four_and_exits_non_zero(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name in ("alpha", "beta"):
        write_plugin_dist(site, f"tasker-{name}", "0.0.1", name, f"tasker_{name}:plugin",
                          {f"tasker_{name}.py": BROKEN_IMPORT.format(name=name)})
    write_plugin_dist(site, "tasker-reports", "0.0.1", "reports", "tasker_reports:plugin",
                      {"tasker_reports.py": REPORTS})
    write_plugin_dist(site, "tasker-rogue", "0.0.1", "rogue", "tasker_rogue:plugin", {"tasker_rogue.py": ROGUE})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    env.pop("TASKER_STRICT_PLUGINS", None)
    proc = subprocess.run([sys.executable, "-c", "from tasker_host.cli.main import main; main()",
                           "--strict", "--database-url", f"sqlite:///{tmp_path / 't.db'}", "worker", "--until-idle"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    for text in ("tasker-alpha", "tasker_alpha needs a module", "tasker-beta", "tasker_beta needs a module",
                 "tasker-reports", "nowhere", "namespace_ownership: namespace payments", "tasker-rogue 0.0.1",
                 "tasker-payments"):
        assert text in proc.stderr, f"{text!r} missing from:\n{proc.stderr}"
    assert not (tmp_path / "t.db").exists()  # a refusing host opens no database
