"""Helpers of the plugin kit's tests: scaffolded projects, the CLI through click's runner, and a
project made discoverable without ``pip install`` (a dist-info directory on ``PYTHONPATH``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState
from tasker_host.scaffold import PluginSpec, create, host_requirement
from tasker_host.testing.entry_point_dir import write_plugin_dist

ROOT = Path(__file__).resolve().parents[1]


def invoke(args: list[str], entry_points: Any = None) -> Result:
    """``tasker-host ARGS`` in-process (``entry_points``: the installed plugins, default real)."""
    return CliRunner().invoke(build_cli(), args, obj=CliState(entry_points=entry_points))


def invoke_json(args: list[str], entry_points: Any = None, *, exit_code: int = 0) -> dict[str, Any]:
    result = invoke([*args, "--json"], entry_points)
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def scaffold(tmp_path: Path, name: str = "shipping", namespace: str | None = None,
             owner: str | None = None) -> Path:
    """A freshly scaffolded project ``tmp_path/name`` (the package is ``tasker_<name>``)."""
    directory = tmp_path / name
    create(PluginSpec(name, namespace or name, directory, owner, host_requirement()))
    return directory


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def fake_install(project: Path, site: Path, name: str, namespace: str) -> dict[str, str]:
    """An environment for a subprocess in which ``project`` is importable from its ``src`` and
    declared installed (dist-info with its entry point), as ``pip install -e`` would leave it."""
    write_plugin_dist(site, "tasker-" + name.replace("_", "-"), "0.1.0", namespace,
                      f"tasker_{name}.plugin")
    path = os.pathsep.join([str(project / "src"), str(site), str(ROOT)])
    return {**os.environ, "PYTHONPATH": path}


def run_pytest(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The project's own test suite, as ``pytest PROJECT`` from its parent directory."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", project.name],
                          cwd=project.parent, env=env, capture_output=True, text=True, timeout=120)
