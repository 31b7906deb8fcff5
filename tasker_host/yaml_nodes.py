"""Strict walk of composed YAML nodes into plain JSON-like data, with a line for every key path.

Only plain JSON data is accepted: string mapping keys, no duplicate keys, no merge keys, no
custom tags, no recursive aliases, and a bounded number of values after alias expansion. Every
problem is recorded on the :class:`Document` as a :class:`TemplateProblem` rather than raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import yaml

from tasker_host.models import TemplateProblem

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
MAX_NODES = 100_000  # values per document, after alias expansion


def kind_of(value: Any) -> str:
    """The kind of a plain value, for messages: ``"a mapping"``, ``"an integer"``..."""
    return _KINDS.get(type(value), type(value).__name__)


def child_path(path: str, key: str | int) -> str:
    """The key path of ``key`` below ``path``: ``a.b``, ``a[0]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Document:
    """One document being loaded: its source, key-path lines and problems found so far."""

    def __init__(self, source: str | None, constructor: yaml.constructor.SafeConstructor) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self.raw: dict[str, str] = {}  # key path -> YAML text of non-string scalars
        self.problems: list[TemplateProblem] = []
        self._constructor = constructor
        self._active: set[int] = set()
        self._budget = MAX_NODES

    def add(self, message: str, key: str = "", line: int | None = None) -> None:
        line = self.line_of(key) if line is None else line
        self.problems.append(TemplateProblem(message, self.source, line, key))

    def line_of(self, key: str) -> int | None:
        """Line of ``key``, or of its nearest ancestor that has one."""
        while key not in self.lines and key:
            key = key[: max(key.rfind("."), key.rfind("["), 0)]
        return self.lines.get(key)

    # --- YAML text -> plain data ----------------------------------------------------------------
    def read(self, text: str, loader: Any) -> dict[str, Any] | None:
        """Compose ``text`` and walk it; ``None`` (with a problem) unless it is one mapping."""
        try:
            root = yaml.compose(text, Loader=loader)
        except yaml.YAMLError as exc:
            self.add(*yaml_error(exc, text))
            return None
        if not isinstance(root, yaml.MappingNode):
            found = "an empty document" if root is None else kind_of(self.value(root, ""))
            line = 1 if root is None else root.start_mark.line + 1
            self.add(f"a template document must be a mapping, found {found}", "", line)
            return None
        self.lines[""] = root.start_mark.line + 1
        return self.value(root, "")

    # --- YAML nodes -> plain data ---------------------------------------------------------------
    def value(self, node: yaml.Node, path: str) -> Any:
        self._budget -= 1
        if self._budget < 0:  # aliases can expand a small file exponentially ("billion laughs")
            if self._budget == -1:
                self.add(f"document too large (over {MAX_NODES} values after alias expansion)")
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
            assert isinstance(node, yaml.SequenceNode)  # the composer makes scalars, mappings, sequences
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
            child = child_path(path, key)
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
            read = self._scalar(node, child_path(path, node.value))
            self.add(f"key {node.value} is read by YAML as {kind_of(read)} ({read!r}): quote it",
                     child_path(path, node.value), line)  # fmt: skip
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
                    out[key] = self.plain(item, child_path(path, key))
                else:
                    self.add(f"key {key!r} is {kind_of(key)}, not a string", path)
            return out
        if isinstance(value, (list, tuple)):
            return [self.plain(item, child_path(path, i)) for i, item in enumerate(value)]
        return value


def yaml_error(exc: yaml.YAMLError, text: str) -> tuple[str, str, int | None]:
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
