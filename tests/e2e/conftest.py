"""End-to-end fixtures: real wheels, real ``pip install``, real ``tasker-host`` processes.

* ``wheelhouse`` builds the wheels of the host and the three team plugins once per session with
  ``pip wheel --no-deps`` (build isolation: setuptools comes from the package index). The sources
  are copied to a temporary directory first, so the build never writes ``build/`` or
  ``*.egg-info`` into the working tree other people are editing.
* ``make_venv`` creates a fresh ``python -m venv`` and ``pip install``s wheels into it (not
  editable; the host's dependencies come from the index).
* ``installed`` is the session's venv with the host and the three plugins. A test that changes
  it (installs another distribution) must put it back before it ends; tests that need a different
  set of distributions make their own venv with ``make_venv``.

Every command runs with ``HOME``, ``TASKER_HOME`` and ``XDG_DATA_HOME`` inside the session's
temporary directory, no inherited ``TASKER_*`` variables and a working directory outside the
repository, so nothing reads or writes the user's files and the repository's own ``tasker_host``
cannot shadow the installed one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = "tasker-host"
PLUGIN_SOURCES = {
    "tasker-payments": ROOT / "plugins" / "payments",
    "tasker-customer-success": ROOT / "plugins" / "customer_success",
    "tasker-inventory": ROOT / "plugins" / "inventory",
}
PIP_TIMEOUT = 600  # a safety net against a hung index, not a wait
CLI_TIMEOUT = 120
_BUILD_LEFTOVERS = {"build", "dist", ".pytest_cache", "tests"}  # at a project's top level only


def copy_project(source: Path, dest: Path) -> Path:
    """Copy a project's sources to ``dest``, leaving out build leftovers and its tests."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == source
        return {n for n in names if n.endswith((".egg-info", ".pyc")) or n == "__pycache__"
                or (top and n in _BUILD_LEFTOVERS)}

    shutil.copytree(source, dest, ignore=ignore)
    return dest


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """A command's exit status and full output, for assertion messages."""
    argv = proc.args if isinstance(proc.args, str) else " ".join(map(str, proc.args))
    return (f"\n$ {argv}\nexit status {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")


@dataclass(frozen=True)
class Sandbox:
    """A private HOME (and pip cache) for every process the e2e tests start."""

    home: Path
    pip_cache: Path

    def env(self, path_first: Path | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TASKER_")
               and k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_USER"}}
        env.update(
            HOME=str(self.home),
            TASKER_HOME=str(self.home / "tasker"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            PIP_CACHE_DIR=str(self.pip_cache),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_NO_INPUT="1",
            PYTHONNOUSERSITE="1",
        )
        if path_first is not None:
            env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def run(self, argv: Sequence[str | Path], *, timeout: float, path_first: Path | None = None,
            env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=self.home,
                              env={**self.env(path_first), **(env or {})}, timeout=timeout, input=stdin)


@dataclass(frozen=True)
class Venv:
    """A virtual environment with installed distributions and a way to run its ``tasker-host``."""

    path: Path
    sandbox: Sandbox
    describe = staticmethod(describe)

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def tasker_host(self) -> Path:
        return self.path / "bin" / "tasker-host"

    def pip(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """``python -m pip ARGS`` in this venv; fails the test unless it succeeds."""
        proc = self.sandbox.run([self.python, "-m", "pip", *args], timeout=PIP_TIMEOUT, path_first=self.path / "bin")
        assert proc.returncode == 0, f"pip failed{describe(proc)}"
        return proc

    def py(self, code: str) -> Any:
        """Run ``code`` with this venv's interpreter; it prints one JSON document, returned parsed."""
        proc = self.sandbox.run([self.python, "-c", code], timeout=CLI_TIMEOUT, path_first=self.path / "bin")
        assert proc.returncode == 0, describe(proc)
        return json.loads(proc.stdout)

    def cli(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed ``tasker-host ARGS`` as a new process (a fresh host every time).

        ``expect``: the exit status the command must have (``None``: don't check).
        """
        proc = self.sandbox.run([self.tasker_host, *args], timeout=CLI_TIMEOUT, path_first=self.path / "bin",
                                env=env, stdin=stdin)
        if expect is not None:
            assert proc.returncode == expect, f"expected exit status {expect}{describe(proc)}"
        return proc

    def cli_json(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> Any:
        """``cli(*args, "--json")`` with stdout parsed as JSON."""
        proc = self.cli(*args, "--json", expect=expect, env=env)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not JSON ({exc}){describe(proc)}") from None

    def distribution(self, name: str) -> dict[str, Any]:
        """Version, install location and ``direct_url.json`` of an installed distribution."""
        return self.py(
            "import json, importlib.metadata as m\n"
            f"d = m.distribution({name!r})\n"
            "print(json.dumps({'name': d.metadata['Name'], 'version': d.version,\n"
            "                  'location': str(d.locate_file('')),\n"
            "                  'direct_url': json.loads(d.read_text('direct_url.json') or 'null')}))"
        )


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    root = tmp_path_factory.mktemp("e2e")
    home, cache = root / "home", root / "pip-cache"
    home.mkdir()
    cache.mkdir()
    return Sandbox(home, cache)


@pytest.fixture(scope="session")
def copy_source() -> Callable[[Path, Path], Path]:
    """``copy_source(project_dir, dest)``: the project's sources without build leftovers or tests."""
    return copy_project


@pytest.fixture(scope="session")
def build_wheels(sandbox: Sandbox) -> Callable[[Sequence[Path], Path], dict[str, Path]]:
    """``build_wheels(source_dirs, out_dir)``: copy each project under ``out_dir/src`` and build it
    there with ``pip wheel --no-deps`` into ``out_dir/dist``; returns {distribution name: wheel}."""

    def build(sources: Sequence[Path], out_dir: Path) -> dict[str, Path]:
        scratch, dist = out_dir / "src", out_dir / "dist"
        assert not dist.exists(), f"{dist} already holds wheels"
        copies = [scratch / s.name for s in sources]
        for source, copy in zip(sources, copies, strict=True):
            copy_project(source, copy)
        proc = sandbox.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist,
                            *copies], timeout=PIP_TIMEOUT)
        assert proc.returncode == 0, f"building wheels failed{describe(proc)}"
        wheels = {_wheel_distribution(w): w for w in sorted(dist.glob("*.whl"))}
        assert len(wheels) == len(sources), f"expected {len(sources)} wheels, got {sorted(dist.iterdir())}"
        return wheels

    return build


def _wheel_distribution(wheel: Path) -> str:
    return wheel.name.split("-")[0].replace("_", "-").lower()


def _host_source(dest: Path) -> Path:
    """Just what the host's wheel is built from (not tests, plugins, .venv, ...)."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "tasker_host", dest / "tasker_host", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, build_wheels: Callable[..., dict[str, Path]]
               ) -> dict[str, Path]:
    """{distribution name: wheel} for the host and the three team plugins, built once."""
    root = tmp_path_factory.mktemp("wheelhouse")
    host_src = _host_source(root / "host-src" / "tasker-host")
    wheels = build_wheels([host_src, *PLUGIN_SOURCES.values()], root / "build")
    expected = {HOST, *PLUGIN_SOURCES}
    assert set(wheels) == expected, f"built {sorted(wheels)}, expected {sorted(expected)}"
    return wheels


@pytest.fixture(scope="session")
def make_venv(tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox) -> Callable[..., Venv]:
    """``make_venv(name, wheels)``: a fresh virtual environment with ``wheels`` pip-installed."""

    def make(name: str, wheels: Sequence[Path]) -> Venv:
        path = tmp_path_factory.mktemp(f"venv-{name}")
        proc = sandbox.run([sys.executable, "-m", "venv", path], timeout=PIP_TIMEOUT)
        assert proc.returncode == 0, f"python -m venv failed{describe(proc)}"
        venv = Venv(path, sandbox)
        venv.pip("install", "--quiet", *wheels)
        return venv

    return make


@pytest.fixture(scope="session")
def installed(make_venv: Callable[..., Venv], wheelhouse: dict[str, Path]) -> Venv:
    """The session's venv: the host and the three team plugins, installed from their wheels."""
    return make_venv("main", list(wheelhouse.values()))
