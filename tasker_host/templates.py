"""Strict loading of Tasker-compatible template documents into frozen :class:`TaskTemplate` values.

Pipeline per document: YAML is composed into nodes (C parser when available) and walked by
:mod:`tasker_host.yaml_nodes`, so every key path has a line; then the ``version`` string, the
document JSON Schema (``schemas/task_template.schema.json``), the step graph and the task-context
``schema`` are checked (fast paths in :mod:`tasker_host.schema_checks`). Every problem is
collected and reported at once as a :class:`TemplateProblem` ``(message, file, line, key)``; a
document with any problem yields no template.
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for
from packaging.version import InvalidVersion, Version

from tasker_host import dag, lifecycle
from tasker_host.contracts.template_checks import check_calls, check_result_schema, declared_calls
from tasker_host.models import StepTemplate, TaskTemplate, TemplateProblem, Visibility, frozen_mapping
from tasker_host.schema_checks import fast_2020_12_checker, quick_check
from tasker_host.yaml_nodes import Document, child_path, kind_of

Result = tuple[TaskTemplate | None, list[TemplateProblem]]
Results = tuple[list[TaskTemplate], list[TemplateProblem]]

_YAML_SUFFIXES = (".yaml", ".yml")


class TemplateLoader:
    """Loads template documents strictly; compile once, reuse for every template."""

    def __init__(self) -> None:
        text = (resources.files("tasker_host") / "schemas" / "task_template.schema.json").read_text(
            encoding="utf-8"
        )
        self._schema: dict[str, Any] = json.loads(text)
        self._validator = Draft202012Validator(self._schema)
        self._quick: Callable[[Any], bool] = quick_check(self._schema)
        meta = fast_2020_12_checker()
        self._meta_validators: dict[type, Any] = {Draft202012Validator: meta}
        self._meta_quick: Callable[[Any], bool] = quick_check(meta.schema, meta.format_checker)
        self._constructor = yaml.constructor.SafeConstructor()
        self._yaml_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    # --- public API ---------------------------------------------------------------------------
    def load_text(self, text: str, source: str | None = None) -> Result:
        """Load one YAML document (``source`` names it in problems and on the template)."""
        doc = Document(source, self._constructor)
        data = doc.read(text, self._yaml_loader)
        if data is None:
            return None, doc.problems
        return self._finish(doc, data)

    def load_mapping(self, data: Mapping[str, Any], source: str | None = None) -> Result:
        """Load an already-parsed document (no line numbers); ``data`` is copied, not kept."""
        doc = Document(source, self._constructor)
        if not isinstance(data, Mapping):
            doc.add(f"a template document must be a mapping, found {kind_of(data)}")
            return None, doc.problems
        return self._finish(doc, doc.plain(data, ""))

    def load_path(self, path: Any) -> Results:
        """Load a YAML file, or every ``*.yaml``/``*.yml`` under a directory (sorted, recursive).

        ``path`` is a ``str``, an ``os.PathLike`` or an ``importlib.resources`` Traversable.
        Hidden files and directories (name starting with ``.``) are skipped.
        """
        root = Path(path) if isinstance(path, (str, os.PathLike)) else path
        templates: list[TaskTemplate] = []
        problems: list[TemplateProblem] = []
        if not (hasattr(root, "is_file") and hasattr(root, "iterdir")):
            return [], [TemplateProblem(f"unsupported template source {kind_of(path)}: {path!r}")]
        if not root.is_file() and not root.is_dir():
            return [], [TemplateProblem("no such template file or directory", str(root))]
        for file in [root] if root.is_file() else _yaml_files(root):
            template, found = self._load_file(file)
            problems += found
            if template is not None:
                templates.append(template)
        return templates, problems

    def load_item(self, item: Any) -> Results:
        """Load whatever ``tasker_templates()`` returned: a mapping, a file or a directory."""
        if isinstance(item, Mapping):
            template, problems = self.load_mapping(item)
            return ([template] if template is not None else []), problems
        return self.load_path(item)

    # --- checks -------------------------------------------------------------------------------
    def _load_file(self, file: Any) -> Result:
        source = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return None, [TemplateProblem(f"cannot read template file: {exc}", source)]
        return self.load_text(text, source)

    def _finish(self, doc: Document, data: dict[str, Any]) -> Result:
        before = len(doc.problems)
        lifecycle.normalize(data)
        version = _check_version(doc, data)
        self._check_document(doc, data, skip={"version"} if len(doc.problems) > before else set())
        lifecycle.check(doc, data, version)
        _check_steps(doc, data.get("step_templates"))
        if isinstance(data.get("schema"), dict):
            self._check_context_schema(doc, data["schema"])
        check_result_schema(doc, data, self._check_context_schema)
        check_calls(doc, data.get("step_templates"), self._check_context_schema)
        if doc.problems or version is None:
            return None, sorted(doc.problems, key=lambda p: p.line or 0)
        return _build(data, version, doc), []

    def _check_document(self, doc: Document, data: dict[str, Any], skip: set[str]) -> None:
        """Report every violation of the document schema, at the line of the offending key."""
        if self._quick(data):
            return
        required_done: set[str] = set()
        for error in self._validator.iter_errors(data):
            path = _path(error.absolute_path)
            if path in skip:
                continue
            if error.validator == "additionalProperties":
                _unknown_keys(doc, error, path)
            elif error.validator == "required" and path not in required_done:
                required_done.add(path)
                line = doc.line_of(path)
                for name in error.validator_value:
                    if name not in error.instance:
                        doc.add(f"missing required key {name!r}", child_path(path, name), line)
            elif error.validator != "required":
                doc.add(_describe(error), path)

    def _check_context_schema(self, doc: Document, schema: dict[str, Any], at: str = "schema") -> None:
        """The task-context ``schema`` (or another schema at key path ``at``: ``result_schema``,
        a call's ``sends``) must itself be a valid JSON Schema of its dialect."""
        cls: Any = Draft202012Validator
        if "$schema" in schema:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    cls = validator_for(schema)
            except Exception:  # unknown or malformed: deprecated by jsonschema, an error here
                doc.add(f"unknown $schema {schema['$schema']!r}", f"{at}.$schema")
                return
        if cls is Draft202012Validator and self._meta_quick(schema):
            return  # fast path said valid; anything else gets the full check and its report
        if cls not in self._meta_validators:
            self._meta_validators[cls] = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
        for error in self._meta_validators[cls].iter_errors(schema):
            key = _path(error.absolute_path, at)
            doc.add(f"not a valid JSON Schema: {_describe(error)}", key)


def _check_version(doc: Document, data: dict[str, Any]) -> Version | None:
    """``version`` must be a YAML string that parses as a PEP 440 version."""
    value = data.get("version")
    if "version" not in data or value == "":
        return None  # reported by the document schema
    if not isinstance(value, str):
        doc.add(_version_hint(value, doc.raw.get("version")), "version")
        return None
    try:
        return Version(value)
    except InvalidVersion:
        doc.add(f'version {value!r} is not a valid version (PEP 440, e.g. "1.2.3")', "version")
        return None


def _version_hint(value: Any, raw: str | None) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"version must be a string, found {kind_of(value)}"
    how = "unquoted, YAML reads it as" if raw is not None else "found"
    return f'version must be a string: write version: "{raw or value}" ({how} the number {value!r})'


def _check_steps(doc: Document, steps: Any) -> None:
    """Duplicate step names, unknown or self dependencies, and dependency cycles."""
    if not isinstance(steps, list):
        return
    named = [(i, step, step.get("name")) for i, step in enumerate(steps) if isinstance(step, dict)]
    index = _step_index(doc, named)
    graph, where = _dependency_graph(doc, named, index)
    cycle = dag.find_cycle(graph)
    if cycle:
        doc.add("dependency cycle: " + " -> ".join(cycle), where[(cycle[0], cycle[1])])


def _step_index(doc: Document, named: list[tuple[int, dict[str, Any], Any]]) -> dict[str, int]:
    """Step name -> position of its first declaration; later duplicates are reported."""
    index: dict[str, int] = {}
    for i, _, name in named:
        if isinstance(name, str) and name in index:
            first = f"step_templates[{index[name]}]"
            doc.add(f"duplicate step name {name!r} (also {first}, line {doc.line_of(first)})",
                    f"step_templates[{i}].name")  # fmt: skip
        elif isinstance(name, str):
            index[name] = i
    return index


def _dependency_graph(
    doc: Document, named: list[tuple[int, dict[str, Any], Any]], index: dict[str, int]
) -> tuple[dict[str, list[str]], dict[tuple[str, str], str]]:
    """``(graph, where)``: each step's known dependencies, and the key path declaring each edge.

    Self and unknown dependencies are reported and left out of the graph.
    """
    graph: dict[str, list[str]] = {name: [] for name in index}
    where: dict[tuple[str, str], str] = {}
    for i, step, name in named:
        for dep, key in _declared_deps(step, f"step_templates[{i}]"):
            if dep == name:
                doc.add(f"step {name!r} depends on itself", key)
            elif dep not in index:
                hint = _did_you_mean(dep, index)
                doc.add(f"step {name!r} depends on unknown step {dep!r}{hint}", key)
            elif index.get(name) == i and dep not in graph[name]:
                graph[name].append(dep)
                where[(name, dep)] = key
    return graph, where


def _declared_deps(step: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """``(dependency, key path)`` from ``depends_on_step`` then ``depends_on_steps``."""
    single = step.get("depends_on_step")
    if isinstance(single, str):
        yield single, f"{path}.depends_on_step"
    many = step.get("depends_on_steps")
    if isinstance(many, list):
        for k, dep in enumerate(many):
            if isinstance(dep, str):
                yield dep, f"{path}.depends_on_steps[{k}]"


def _build(data: dict[str, Any], version: Version, doc: Document) -> TaskTemplate:
    schema = data.get("schema")
    deprecated = data.get("deprecated")
    return TaskTemplate(
        namespace=data["namespace_name"],
        name=data["name"],
        version=version,
        steps=tuple(_build_step(step) for step in data["step_templates"]),
        description=data.get("description", ""),
        task_handler_class=data.get("task_handler_class"),
        default_dependent_system=data.get("default_dependent_system"),
        context_schema=frozen_mapping(schema) if schema is not None else None,
        result_schema=frozen_mapping(data["result_schema"]) if "result_schema" in data else None,
        visibility=Visibility(data.get("visibility", Visibility.PUBLIC)),
        deprecated=("deprecated" if deprecated is True else deprecated or None),
        replaced_by=data.get("replaced_by"),
        sunset=lifecycle.parse_sunset(data.get("sunset")),
        source=doc.source,
        document=data,
        locations=frozen_mapping(doc.lines),
    )


def _build_step(step: dict[str, Any]) -> StepTemplate:
    return StepTemplate(
        name=step["name"],
        handler_class=step["handler_class"],
        description=step.get("description", ""),
        depends_on=tuple(dict.fromkeys(dep for dep, _ in _declared_deps(step, ""))),
        retryable=step.get("default_retryable", True),
        retry_limit=int(step.get("default_retry_limit", 3)),  # 3.0 is a JSON integer too
        handler_config=frozen_mapping(step.get("handler_config")),
        skippable=step.get("skippable", False),
        calls=declared_calls(step),
    )


def _unknown_keys(doc: Document, error: ValidationError, path: str) -> None:
    known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
    for key in error.instance if isinstance(error.instance, Mapping) else ():
        if key not in known and not key.startswith("x-"):
            doc.add(f"unknown key {key!r}{_did_you_mean(key, known)}", child_path(path, key))


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(error: ValidationError) -> str:
    """A short message for a schema error (never dumps a whole sub-document)."""
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"must be of type {expected}, found {kind_of(error.instance)}"
    if error.validator == "enum":
        choices = ", ".join(map(repr, error.validator_value if isinstance(error.validator_value, list) else ()))
        return f"must be one of {choices}, found {error.instance!r}"
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."


def _path(parts: Any, prefix: str = "") -> str:
    path = prefix
    for part in parts:
        path = child_path(path, part)
    return path


def _yaml_files(root: Any) -> list[Any]:
    """Every non-hidden ``*.yaml``/``*.yml`` below ``root``, sorted by relative path."""
    found: list[tuple[tuple[str, ...], Any]] = []
    pending: list[tuple[tuple[str, ...], Any]] = [((), root)]
    while pending:
        parts, folder = pending.pop()
        for child in folder.iterdir():
            if child.name.startswith("."):
                continue
            if child.is_dir():
                pending.append(((*parts, child.name), child))
            elif child.name.endswith(_YAML_SUFFIXES):
                found.append(((*parts, child.name), child))
    return [file for _, file in sorted(found, key=lambda pair: pair[0])]
