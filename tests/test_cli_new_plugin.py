"""``tasker-host new-plugin``: what it creates, that the project works as it is (its own tests
pass, ``check`` passes), and every refusal (listed at once, nothing written)."""

from __future__ import annotations

import ast
import os
import stat
import tomllib

import pytest
import yaml

from tasker_host import scaffold
from tasker_host.scaffold import PluginSpec, create
from tasker_host.templates import TemplateLoader
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin
from tests.kit_support import fake_install, invoke, invoke_json, run_pytest
from tests.kit_support import scaffold as scaffold_project

EXPECTED_FILES = [
    ".github/workflows/plugin.yml", ".gitignore", "README.md", "ci.sh", "pyproject.toml",
    "src/tasker_shipping/__init__.py", "src/tasker_shipping/handlers.py",
    "src/tasker_shipping/plugin.py", "src/tasker_shipping/templates/shipping-1.0.0.yaml",
    "tests/conftest.py", "tests/test_handlers.py", "tests/test_plugin.py", "tests/test_workflow.py",
]


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_new_plugin_creates_a_complete_distribution_and_says_what(tmp_path):
    target = tmp_path / "shipping"
    doc = invoke_json(["new-plugin", "shipping", "--namespace", "shipping", "--owner", "Parcel team",
                       "--directory", str(target)])
    assert doc["files"] == EXPECTED_FILES
    assert {k: doc[k] for k in ("ok", "distribution", "package", "namespace", "owner", "entry_point",
                                "workflow")} == {
        "ok": True, "distribution": "tasker-shipping", "package": "tasker_shipping",
        "namespace": "shipping", "owner": "Parcel team",
        "entry_point": "shipping = tasker_shipping.plugin", "workflow": "shipping.shipping@1.0.0"}
    assert doc["directory"] == str(target.resolve())
    assert doc["next_steps"][0] == f"pip install -e '{target}[test]'"
    assert sorted(p for p in _tree(target) if (target / p).is_file()) == EXPECTED_FILES
    assert _tree(tmp_path)[0] == "shipping", "no staging directory is left behind"


def test_the_project_declares_the_entry_point_and_ships_its_templates(tmp_path):
    project = scaffold_project(tmp_path, "customer_care", "care", owner="Care team")
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "tasker-customer-care"
    assert meta["project"]["entry-points"]["tasker_host.plugins"] == {"care": "tasker_customer_care.plugin"}
    assert meta["tool"]["setuptools"]["package-data"] == {"tasker_customer_care": ["templates/*.yaml"]}
    assert meta["build-system"]["requires"] == ["setuptools>=77"]
    assert meta["project"]["dependencies"][0].startswith("tasker-host>=")
    templates, problems = TemplateLoader().load_path(project / "src/tasker_customer_care/templates")
    assert problems == []
    [template] = templates
    assert (template.full_name, template.step_names) == (
        "care.customer_care@1.0.0", ["validate_request", "record_result"])
    assert [s.handler_class for s in template.steps] == ["Care::ValidateRequest", "Care::RecordResult"]


def test_every_file_is_rendered_python_parses_and_ci_sh_is_executable(tmp_path):
    project = scaffold_project(tmp_path)
    for path in (p for p in project.rglob("*") if p.is_file()):
        text = path.read_text()
        assert "${" not in text.replace("${{", ""), f"placeholder left in {path}"
        if path.suffix == ".py":
            ast.parse(text, str(path))
        if path.suffix in {".yml", ".yaml"}:
            assert isinstance(yaml.safe_load(text), dict), path
    assert (project / "ci.sh").stat().st_mode & stat.S_IXUSR
    assert "tasker-host check ." in (project / "ci.sh").read_text()
    assert "./ci.sh" in (project / ".github/workflows/plugin.yml").read_text()


def test_the_generated_tests_pass_with_no_edits(tmp_path):
    """``pytest NAME`` on the fresh project, with the project importable and its entry point
    declared as ``pip install -e`` leaves them (the e2e test does the real install)."""
    project = scaffold_project(tmp_path)
    proc = run_pytest(project, fake_install(project, tmp_path / "site", "shipping", "shipping"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 passed" in proc.stdout, proc.stdout


def test_the_generated_project_passes_check(tmp_path):
    project = scaffold_project(tmp_path)
    doc = invoke_json(["check", str(project)])
    assert doc["ok"] is True, doc["problems"]
    assert (doc["namespaces"], doc["templates"]) == (["shipping"], ["shipping.shipping@1.0.0"])


def test_help_teaches_with_examples():
    result = invoke(["new-plugin", "--help"])
    assert result.exit_code == 0
    assert "tasker-host new-plugin shipping --namespace shipping" in result.stdout
    assert "pip install -e" in result.stdout and "tasker-host check" in result.stdout


def test_the_human_output_lists_files_and_next_steps(tmp_path):
    result = invoke(["new-plugin", "shipping", "-n", "shipping", "-d", str(tmp_path / "p")])
    assert result.exit_code == 0, result.stderr
    assert "Created tasker-shipping in" in result.stdout
    assert "  src/tasker_shipping/plugin.py" in result.stdout
    assert "tasker-host run shipping.shipping@1.0.0 --context" in result.stdout


def test_a_relative_directory_is_shown_as_a_path_pip_installs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = invoke_json(["new-plugin", "shipping", "--namespace", "shipping"])
    assert doc["directory"] == str((tmp_path / "shipping").resolve())
    assert doc["next_steps"][:2] == ["pip install -e './shipping[test]'", "pytest ./shipping"]


# --- refusals ------------------------------------------------------------------------------------
def _refused(args, entry_points=None):
    result = invoke(["new-plugin", *args], entry_points)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    return result.stderr


@pytest.mark.parametrize("name", ["Shipping", "9lives", "ship-ping", "ship ping", "", "x" * 41])
def test_an_invalid_name_is_refused(tmp_path, name):
    err = _refused([name, "--namespace", "shipping", "-d", str(tmp_path / "p")])
    assert f"invalid plugin name {name!r}" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("namespace", ["Shipping", "ship.ping", "9ship", "ship-ping"])
def test_an_invalid_namespace_is_refused(tmp_path, namespace):
    err = _refused(["shipping", "--namespace", namespace, "-d", str(tmp_path / "p")])
    assert f"invalid namespace {namespace!r}" in err


def test_a_namespace_an_installed_distribution_owns_is_refused(tmp_path):
    err = _refused(["refunds", "--namespace", "payments", "-d", str(tmp_path / "p")])
    assert "namespace 'payments' is already owned by tasker-payments 1.4.0" in err


def test_ownership_is_read_from_the_plugins_discovery_finds(tmp_path):
    fake = FakeEntryPoint.of("shipping", make_plugin(["shipping"], [], {"Noop": NoopHandler}),
                             dist="tasker-logistics", version="2.0.0")
    err = _refused(["parcels", "--namespace", "shipping", "-d", str(tmp_path / "p")], [fake])
    assert "already owned by tasker-logistics 2.0.0" in err


def test_an_installed_distribution_or_module_of_that_name_is_refused(tmp_path):
    err = _refused(["payments", "--namespace", "pay2", "-d", str(tmp_path / "p")])
    assert "distribution 'tasker-payments' is installed already" in err
    assert "a module named 'tasker_payments' is importable already" in err
    assert "a module named 'tasker_host'" in _refused(["host", "--namespace", "host", "-d", str(tmp_path / "p")])


def test_an_existing_directory_is_refused_and_left_as_it_was(tmp_path):
    target = tmp_path / "shipping"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    err = _refused(["shipping", "--namespace", "shipping", "-d", str(target)])
    assert f"{target} already exists" in err
    assert _tree(target) == ["notes.txt"] and (target / "notes.txt").read_text() == "mine"


def test_every_problem_is_listed_at_once_and_nothing_is_written(tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    doc = invoke_json(["new-plugin", "Bad-Name", "--namespace", "payments", "--owner", 'The "A" team',
                       "-d", str(target)], exit_code=1)
    assert doc["ok"] is False
    assert [p.split(" ")[:2] for p in doc["problems"]] == [
        ["invalid", "plugin"], ["invalid", "owner"], ["namespace", "'payments'"], [str(target), "already"]]
    assert _tree(tmp_path) == ["existing"]


def test_an_error_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    real = scaffold._target_name
    calls = []

    def fail_on_the_fifth(name, variables):
        calls.append(name)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return real(name, variables)

    monkeypatch.setattr(scaffold, "_target_name", fail_on_the_fifth)
    with pytest.raises(OSError):
        create(PluginSpec("shipping", "shipping", tmp_path / "shipping"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("version,expected", [("0.1.0", "tasker-host>=0.1,<0.2"),
                                              ("0.12.3", "tasker-host>=0.12,<0.13"),
                                              ("2.3.1", "tasker-host>=2.3,<3")])
def test_the_host_requirement_follows_the_running_hosts_series(monkeypatch, version, expected):
    monkeypatch.setattr(scaffold.metadata, "version", lambda name: version)
    assert scaffold.host_requirement() == expected
