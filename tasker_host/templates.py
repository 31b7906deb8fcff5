"""Strict loading of Tasker-compatible template documents into frozen :class:`TaskTemplate` values.

Pipeline per document: YAML is composed into nodes (C parser when available) and walked here, so
every key path has a line; then the ``version`` string, the document JSON Schema
(``schemas/task_template.schema.json``), the step graph and the task-context ``schema`` are
checked. Every problem is collected and reported at once as a :class:`TemplateProblem`
``(message, file, line, key)``; a document with any problem yields no template.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urljoin

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from packaging.version import InvalidVersion, Version

from tasker_host import dag
from tasker_host.models import StepTemplate, TaskTemplate, TemplateProblem, Visibility
from tasker_host.models import frozen_mapping

Result = tuple[TaskTemplate | None, list[TemplateProblem]]
Results = tuple[list[TaskTemplate], list[TemplateProblem]]

_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE, _STAMP = (_TAG + t for t in ("str", "map", "seq", "merge", "timestamp"))
_C = yaml.constructor.SafeConstructor
_SCALARS = MappingProxyType(
    {_TAG + "int": _C.construct_yaml_int, _TAG + "float": _C.construct_yaml_float,
     _TAG + "bool": _C.construct_yaml_bool, _TAG + "null": _C.construct_yaml_null}
)  # fmt: skip
_KINDS = MappingProxyType(
    {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
     float: "a number", type(None): "null"}
)  # fmt: skip
_YAML_SUFFIXES = (".yaml", ".yml")
_MAX_NODES = 100_000  # values per document, after alias expansion
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default"})
_JSON_TYPES = MappingProxyType(
    {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
)


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Document:
    """One document being loaded: its source, key-path lines and problems found so far."""

    def __init__(self, source: str | None, constructor: yaml.constructor.SafeConstructor) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self.raw: dict[str, str] = {}  # key path -> YAML text of non-string scalars
        self.problems: list[TemplateProblem] = []
        self._constructor = constructor
        self._active: set[int] = set()
        self._budget = _MAX_NODES

    def add(self, message: str, key: str = "", line: int | None = None) -> None:
        line = self.line_of(key) if line is None else line
        self.problems.append(TemplateProblem(message, self.source, line, key))

    def line_of(self, key: str) -> int | None:
        """Line of ``key``, or of its nearest ancestor that has one."""
        while key not in self.lines and key:
            key = key[: max(key.rfind("."), key.rfind("["), 0)]
        return self.lines.get(key)

    # --- YAML nodes -> plain data -------------------------------------------------------------
    def value(self, node: yaml.Node, path: str) -> Any:
        self._budget -= 1
        if self._budget < 0:  # aliases can expand a small file exponentially ("billion laughs")
            if self._budget == -1:
                self.add(f"document too large (over {_MAX_NODES} values after alias expansion)")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self.add("recursive YAML alias", path, node.start_mark.line + 1)
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return self._sequence(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        tag = node.tag
        if tag == _STR or tag == _STAMP:  # timestamps stay text: documents are JSON data
            return node.value
        build = _SCALARS.get(tag)
        if build is None:
            self.add(f"unsupported YAML tag {tag}", path, node.start_mark.line + 1)
            return node.value
        self.raw[path] = node.value
        return build(self._constructor, node)

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Any]:
        if node.tag != _MAP:
            self.add(f"unsupported YAML tag {node.tag} (expected a plain mapping)", path)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = self._key(key_node, path, line)
            if key is None:
                continue
            child = _child(path, key)
            if key in out:
                first = self.lines[child]
                self.add(f"duplicate key {key!r}: first on line {first}, again on line {line}",
                         child, line)  # fmt: skip
                continue
            self.lines[child] = line
            out[key] = self.value(value_node, child)
        return out

    def _key(self, node: yaml.Node, path: str, line: int) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            return node.value
        if isinstance(node, yaml.ScalarNode) and node.tag == _MERGE:
            self.add("YAML merge keys (<<) are not supported: write the keys out", path, line)
        elif isinstance(node, yaml.ScalarNode):
            read = self._scalar(node, _child(path, node.value))
            self.add(f"key {node.value} is read by YAML as {_kind(read)} ({read!r}): quote it",
                     _child(path, node.value), line)  # fmt: skip
        else:
            self.add("mapping keys must be plain strings", path, line)
        return None

    def _sequence(self, node: yaml.SequenceNode, path: str) -> list[Any]:
        if node.tag != _SEQ:
            self.add(f"unsupported YAML tag {node.tag} (expected a plain list)", path)
        out = []
        for i, item in enumerate(node.value):
            child = f"{path}[{i}]"
            self.lines[child] = item.start_mark.line + 1
            out.append(self.value(item, child))
        return out

    # --- already-parsed data -> plain data ------------------------------------------------------
    def plain(self, value: Any, path: str) -> Any:
        """Copy mappings to dicts and lists/tuples to lists; keys must be strings."""
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if isinstance(key, str):
                    out[key] = self.plain(item, _child(path, key))
                else:
                    self.add(f"key {key!r} is {_kind(key)}, not a string", path)
            return out
        if isinstance(value, (list, tuple)):
            return [self.plain(item, _child(path, i)) for i, item in enumerate(value)]
        return value


class TemplateLoader:
    """Loads template documents strictly; compile once, reuse for every template."""

    def __init__(self) -> None:
        text = (resources.files("tasker_host") / "schemas" / "task_template.schema.json").read_text(
            encoding="utf-8"
        )
        self._schema: dict[str, Any] = json.loads(text)
        self._validator = Draft202012Validator(self._schema)
        try:
            self._quick: Callable[[Any], bool] = _quick_check(self._schema)
        except ValueError:  # the schema grew a keyword the fast path does not know: always full
            self._quick = lambda data: False
        self._meta_validators: dict[type, Any] = {Draft202012Validator: _fast_2020_12_checker()}
        self._constructor = yaml.constructor.SafeConstructor()
        self._yaml_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    # --- public API ---------------------------------------------------------------------------
    def load_text(self, text: str, source: str | None = None) -> Result:
        """Load one YAML document (``source`` names it in problems and on the template)."""
        doc = _Document(source, self._constructor)
        try:
            root = yaml.compose(text, Loader=self._yaml_loader)
        except yaml.YAMLError as exc:
            doc.add(*_yaml_error(exc, text))
            return None, doc.problems
        if not isinstance(root, yaml.MappingNode):
            found = "an empty document" if root is None else _kind(doc.value(root, ""))
            line = 1 if root is None else root.start_mark.line + 1
            doc.add(f"a template document must be a mapping, found {found}", "", line)
            return None, doc.problems
        doc.lines[""] = root.start_mark.line + 1
        return self._finish(doc, doc.value(root, ""))

    def load_mapping(self, data: Mapping[str, Any], source: str | None = None) -> Result:
        """Load an already-parsed document (no line numbers); ``data`` is copied, not kept."""
        doc = _Document(source, self._constructor)
        if not isinstance(data, Mapping):
            doc.add(f"a template document must be a mapping, found {_kind(data)}")
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
            return [], [TemplateProblem(f"unsupported template source {_kind(path)}: {path!r}")]
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

    def _finish(self, doc: _Document, data: dict[str, Any]) -> Result:
        before = len(doc.problems)
        version = _check_version(doc, data)
        self._check_document(doc, data, skip={"version"} if len(doc.problems) > before else set())
        _check_steps(doc, data.get("step_templates"))
        if isinstance(data.get("schema"), dict):
            self._check_context_schema(doc, data["schema"])
        if doc.problems or version is None:
            return None, sorted(doc.problems, key=lambda p: p.line or 0)
        return _build(data, version, doc), []

    def _check_document(self, doc: _Document, data: dict[str, Any], skip: set[str]) -> None:
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
                        doc.add(f"missing required key {name!r}", _child(path, name), line)
            elif error.validator != "required":
                doc.add(_describe(error), path)

    def _check_context_schema(self, doc: _Document, schema: dict[str, Any]) -> None:
        """The task-context ``schema`` must itself be a valid JSON Schema of its dialect."""
        cls: Any = Draft202012Validator
        if "$schema" in schema:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    cls = validator_for(schema)
            except Exception:  # unknown or malformed: deprecated by jsonschema, an error here
                doc.add(f"unknown $schema {schema['$schema']!r}", "schema.$schema")
                return
        if cls not in self._meta_validators:
            self._meta_validators[cls] = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
        for error in self._meta_validators[cls].iter_errors(schema):
            key = _path(error.absolute_path, "schema")
            doc.add(f"not a valid JSON Schema: {_describe(error)}", key)


def _check_version(doc: _Document, data: dict[str, Any]) -> Version | None:
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
        return f"version must be a string, found {_kind(value)}"
    how = "unquoted, YAML reads it as" if raw is not None else "found"
    return f'version must be a string: write version: "{raw or value}" ({how} the number {value!r})'


def _check_steps(doc: _Document, steps: Any) -> None:
    """Duplicate step names, unknown or self dependencies, and dependency cycles."""
    if not isinstance(steps, list):
        return
    index: dict[str, int] = {}  # step name -> position of its first declaration
    named = [(i, step, step.get("name")) for i, step in enumerate(steps) if isinstance(step, dict)]
    for i, _, name in named:
        if isinstance(name, str) and name in index:
            first = f"step_templates[{index[name]}]"
            doc.add(f"duplicate step name {name!r} (also {first}, line {doc.line_of(first)})",
                    f"step_templates[{i}].name")  # fmt: skip
        elif isinstance(name, str):
            index[name] = i
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
    cycle = dag.find_cycle(graph)
    if cycle:
        doc.add("dependency cycle: " + " -> ".join(cycle), where[(cycle[0], cycle[1])])


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


def _build(data: dict[str, Any], version: Version, doc: _Document) -> TaskTemplate:
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
        visibility=Visibility(data.get("visibility", Visibility.PUBLIC)),
        deprecated=("deprecated" if deprecated is True else deprecated or None),
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
    )


def _unknown_keys(doc: _Document, error: ValidationError, path: str) -> None:
    known = error.schema.get("properties", {})
    for key in error.instance:
        if key not in known and not key.startswith("x-"):
            doc.add(f"unknown key {key!r}{_did_you_mean(key, known)}", _child(path, key))


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(error: ValidationError) -> str:
    """A short message for a schema error (never dumps a whole sub-document)."""
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"must be of type {expected}, found {_kind(error.instance)}"
    if error.validator == "enum":
        choices = ", ".join(map(repr, error.validator_value))
        return f"must be one of {choices}, found {error.instance!r}"
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."


def _path(parts: Any, prefix: str = "") -> str:
    path = prefix
    for part in parts:
        path = _child(path, part)
    return path


def _yaml_error(exc: yaml.YAMLError, text: str) -> tuple[str, str, int | None]:
    """``(message, key, line)`` for a YAML syntax error."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        if "another document" in (exc.problem or ""):
            return "a template file must hold exactly one YAML document, found another", "", line
        detail = "; ".join(part for part in (exc.context, exc.problem) if part)
        return f"YAML syntax error: {detail}", "", line
    position = getattr(exc, "position", None)
    line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
        return f"YAML error: unacceptable character #x{code:04x}: {exc.reason}", "", line
    return f"YAML error: {exc}", "", line


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


def _is_type(value: Any, kind: str) -> bool:
    """JSON Schema ``type`` semantics (booleans are not numbers; 1.0 is an integer)."""
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return kind == "number" or isinstance(value, int) or value.is_integer()
    return isinstance(value, _JSON_TYPES[kind])


def _quick_check(schema: Any) -> Callable[[Any], bool]:
    """Compile the JSON Schema subset the document schema uses into a fast ``is_valid``.

    Only a fast path: when it says "valid" the full validator is skipped, otherwise
    ``iter_errors`` does the reporting. Raises ``ValueError`` on a keyword it does not implement.
    """
    if schema is True:
        return lambda value: True
    checks = [_quick_keyword(k, arg, schema) for k, arg in schema.items() if k not in _ANNOTATIONS]
    return lambda value: all(check(value) for check in checks)


def _quick_keyword(key: str, arg: Any, schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """One keyword of :func:`_quick_check`."""
    if key == "type":
        kinds = arg if isinstance(arg, list) else [arg]
        if len(kinds) == 1 and kinds[0] in _JSON_TYPES:
            return lambda v, cls=_JSON_TYPES[kinds[0]]: isinstance(v, cls)
        return lambda v: any(_is_type(v, kind) for kind in kinds)
    if key == "properties":
        subs = [(name, _quick_check(sub)) for name, sub in arg.items()]
        return lambda v: not isinstance(v, dict) or all(f(v[n]) for n, f in subs if n in v)
    if key == "patternProperties":
        subs = [(re.compile(p), _quick_check(sub)) for p, sub in arg.items()]
        return lambda v: not isinstance(v, dict) or all(
            f(v[k]) for k in v for p, f in subs if p.search(k)
        )
    if key == "additionalProperties" and arg is False:
        known = set(schema.get("properties", ()))
        pats = [re.compile(p) for p in schema.get("patternProperties", ())]
        return lambda v: not isinstance(v, dict) or all(
            k in known or any(p.search(k) for p in pats) for k in v
        )
    if key == "required":
        return lambda v: not isinstance(v, dict) or all(name in v for name in arg)
    if key == "items":
        sub = _quick_check(arg)
        return lambda v: not isinstance(v, list) or all(sub(item) for item in v)
    if key in ("minItems", "minLength"):
        kind = list if key == "minItems" else str
        return lambda v: not isinstance(v, kind) or len(v) >= arg
    if key in ("minimum", "exclusiveMinimum"):
        return lambda v: not _is_type(v, "number") or v > arg or (v == arg and key == "minimum")
    if key == "pattern":
        regex = re.compile(arg)
        return lambda v: not isinstance(v, str) or regex.search(v) is not None
    if key == "enum" and all(isinstance(choice, str) for choice in arg):
        return lambda v: isinstance(v, str) and v in arg
    raise ValueError(f"no quick check for JSON Schema keyword {key!r}")


def _fast_2020_12_checker() -> Any:
    """A draft 2020-12 meta-schema validator, flattened for speed.

    The official meta-schema spreads keywords over seven vocabulary documents joined with
    ``$dynamicRef``, which costs ~1 ms per template schema. Their keyword and ``$defs`` names are
    disjoint, so they merge into one document with plain local ``$ref``s that checks exactly the
    same rules ~5x faster. Anything unexpected falls back to the official meta-schema.
    """
    meta = Draft202012Validator.META_SCHEMA
    parts = [SPECIFICATIONS.contents(urljoin(meta["$id"], ref["$ref"])) for ref in meta["allOf"]]
    properties: dict[str, Any] = dict(meta["properties"])
    defs: dict[str, Any] = {}
    for part in parts:
        if properties.keys() & part.get("properties", {}) or defs.keys() & part.get("$defs", {}):
            return Draft202012Validator(meta, format_checker=Draft202012Validator.FORMAT_CHECKER)
        properties.update(part.get("properties", {}))
        defs.update(part.get("$defs", {}))
    refs: set[str] = set()
    merged = {"type": ["object", "boolean"], "properties": properties, "$defs": defs}
    flat = _local_refs(merged, refs)
    if not refs <= {"#"} | {f"#/$defs/{name}" for name in defs}:
        flat = meta
    return Draft202012Validator(flat, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _local_refs(node: Any, refs: set[str]) -> Any:
    """Copy ``node`` with every reference made local; collect the targets in ``refs``."""
    if isinstance(node, list):
        return [_local_refs(item, refs) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$ref", "$dynamicRef") and isinstance(value, str):
            key, value = "$ref", _local_target(key, value)
            refs.add(value)
        else:
            value = _local_refs(value, refs)
        out[key] = value
    return out


def _local_target(key: str, value: str) -> str:
    """``$dynamicRef: "#meta"`` -> ``#``; ``meta/x#/$defs/y`` -> ``#/$defs/y``; else unusable."""
    if key == "$dynamicRef":
        return "#" if value == "#meta" else "?" + value
    if "#/$defs/" in value:
        return "#/$defs/" + value.rpartition("#/$defs/")[2]
    return "?" + value
