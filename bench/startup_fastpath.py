"""Prototype of two start-up speed-ups, measured WITHOUT changing tasker_host (monkeypatching).

Not production code: it shows what the proposed changes do on the ``bench/startup.py``
catalogue, each variant in a fresh subprocess:

* ``meta``: a compiled fast predicate for the flattened draft 2020-12 meta-schema, tried before
  jsonschema's ``iter_errors`` in ``TemplateLoader._check_context_schema`` (same pattern as
  ``schema_checks.quick_check`` for the document schema: "valid" skips the full validator,
  anything else falls back to it for the report);
* ``gc``: the cyclic garbage collector paused around ``load_catalog``.

    .venv/bin/python bench/startup_fastpath.py --plugins 200 --repeat 3

It first checks the predicate against jsonschema on every generated context schema and on
hand-written edge cases: it must never say "valid" where jsonschema reports an error.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing the sibling script
sys.path.insert(0, str(Path(__file__).resolve().parent))
import startup  # noqa: E402  (bench/startup.py: generator and paths)

sys.path.insert(1, str(startup.REPO))  # the checkout's tasker_host, even without an editable install

Predicate = Callable[[Any], bool]
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default", "deprecated",
                          "$dynamicAnchor", "$anchor", "$vocabulary", "examples", "readOnly", "writeOnly"})  # fmt: skip
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return kind == "number" or isinstance(value, int) or value.is_integer()
    return isinstance(value, _TYPES[kind])


def compile_meta(validator: Any) -> Predicate:
    """A fast ``is_valid`` for ``validator.schema`` (the flattened meta-schema, local refs only).

    Raises ``ValueError`` on a keyword it does not implement (caller: always use the full path).
    """
    root, formats = validator.schema, validator.format_checker
    memo: dict[int, Predicate] = {}

    def build(schema: Any) -> Predicate:
        if schema is True or schema is False:
            return lambda v, ok=schema: ok
        if id(schema) in memo:
            return memo[id(schema)]
        checks = [keyword(k, arg, schema) for k, arg in schema.items() if k not in _ANNOTATIONS]
        memo[id(schema)] = f = checks[0] if len(checks) == 1 else (lambda v: all(c(v) for c in checks))
        return f

    def target(ref: str) -> Any:
        if ref == "#":
            return root
        if ref.startswith("#/$defs/") and ref[8:] in root.get("$defs", {}):
            return root["$defs"][ref[8:]]
        raise ValueError(f"unsupported $ref {ref!r}")

    def keyword(k: str, arg: Any, schema: dict[str, Any]) -> Predicate:
        if k == "$ref":
            node, box = target(arg), []

            def ref(v: Any) -> bool:  # bound lazily: "#" is recursive
                if not box:
                    box.append(build(node))
                return box[0](v)

            return ref
        if k == "$defs":
            return lambda v: True  # only holds $ref targets (validated as schemas by "properties")
        if k == "type":
            kinds = arg if isinstance(arg, list) else [arg]
            if len(kinds) == 1 and kinds[0] in ("object", "array", "string"):
                return lambda v, cls=_TYPES[kinds[0]]: isinstance(v, cls)
            return lambda v: any(_is_type(v, kind) for kind in kinds)
        if k == "properties":
            subs = {name: build(sub) for name, sub in arg.items()}

            def properties(v: Any) -> bool:  # iterate the instance's keys, not the ~60 known ones
                return not isinstance(v, dict) or all(
                    f(x) for f, x in ((subs.get(n), x) for n, x in v.items()) if f is not None
                )

            return properties
        if k == "additionalProperties":
            if schema.get("patternProperties"):
                raise ValueError(k)
            known, sub = set(schema.get("properties", ())), build(arg)
            return lambda v: not isinstance(v, dict) or all(sub(x) for n, x in v.items() if n not in known)
        if k == "propertyNames":
            sub = build(arg)
            return lambda v: not isinstance(v, dict) or all(sub(n) for n in v)
        if k == "items":
            sub = build(arg)
            return lambda v: not isinstance(v, list) or all(sub(x) for x in v)
        if k == "anyOf":
            subs = [build(s) for s in arg]
            return lambda v: any(f(v) for f in subs)
        if k == "enum":
            if not all(isinstance(c, str) for c in arg):
                raise ValueError(k)
            choices = frozenset(arg)
            return lambda v: isinstance(v, str) and v in choices
        if k in ("minItems", "minLength"):
            cls = list if k == "minItems" else str
            return lambda v: not isinstance(v, cls) or len(v) >= arg
        if k == "uniqueItems":
            if arg is not True:
                return lambda v: True
            # conservative: only lists of strings are judged; others say "not sure" (full path)
            return lambda v: not isinstance(v, list) or (
                all(isinstance(x, str) for x in v) and len(set(v)) == len(v))  # fmt: skip
        if k in ("minimum", "exclusiveMinimum"):
            return lambda v: not _is_type(v, "number") or v > arg or (v == arg and k == "minimum")
        if k == "pattern":
            regex = re.compile(arg)
            return lambda v: not isinstance(v, str) or regex.search(v) is not None
        if k == "format":
            return lambda v: formats is None or formats.conforms(v, arg)
        raise ValueError(f"no quick check for JSON Schema keyword {k!r}")

    return build(root)


EDGE_CASES: list[Any] = [
    {"type": "strin"}, {"type": ["string", "string"]}, {"properties": {"a": {"minimum": "x"}}},
    {"required": "a"}, {"pattern": "("}, {"patternProperties": {"(": {}}}, {"properties": {"a": {"type": 3}}},
    {"minLength": -1}, {"minLength": 1.5}, {"minLength": 1.0}, {"enum": []}, {"items": {"type": "nope"}},
    {"$defs": {"x": {"type": "bad"}}}, {"additionalProperties": {"type": "x"}}, {"uniqueItems": "yes"},
    {"required": ["a", "a"]}, {"type": []}, {"$id": "x#frag"}, {"$schema": "not a uri"},
    {"dependentRequired": {"a": [1]}}, {"allOf": []}, {"not": {"type": "x"}}, {"if": {"type": "x"}},
    {"const": None}, {"multipleOf": 0}, True, False, 3,
]  # fmt: skip


def check_predicate(root: Path) -> str:
    import yaml
    from jsonschema import Draft202012Validator

    from tasker_host.templates import TemplateLoader

    checker = TemplateLoader()._meta_validators[Draft202012Validator]
    quick = compile_meta(checker)
    files = sorted(root.glob("team_*/templates/*.yaml"))
    schemas = [yaml.load(f.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)["schema"] for f in files]
    fallbacks = 0
    for schema in schemas + EDGE_CASES:
        full = next(iter(checker.iter_errors(schema)), None) is None
        fast = quick(schema)
        startup.check(not (fast and not full), f"fast path says valid, jsonschema does not: {schema!r}")
        fallbacks += fast != full
    times = {}
    for name, f in (("jsonschema", lambda s: next(iter(checker.iter_errors(s)), None) is None), ("fast", quick)):
        t0 = time.perf_counter()
        for schema in schemas:
            f(schema)
        times[name] = 1000 * (time.perf_counter() - t0) / len(schemas)
    return (f"predicate vs jsonschema: {len(schemas)} generated + {len(EDGE_CASES)} edge cases, never "
            f"'valid' when jsonschema has errors; {fallbacks} safe fallbacks; "
            f"{times['jsonschema']:.4f} -> {times['fast']:.4f} ms/schema")  # fmt: skip


def worker(manifest_path: str, variant: str) -> dict[str, Any]:
    from jsonschema import Draft202012Validator

    from tasker_host import templates
    from tasker_host.host import load_catalog
    from tasker_host.settings import HostSettings
    from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin

    if "meta" in variant:
        original = templates.TemplateLoader._check_context_schema
        dialect = Draft202012Validator.META_SCHEMA["$id"]

        def patched(self: Any, doc: Any, schema: dict[str, Any]) -> None:
            quick = self.__dict__.get("_meta_quick")
            if quick is None:
                quick = self._meta_quick = compile_meta(self._meta_validators[Draft202012Validator])
            if schema.get("$schema", dialect) == dialect and quick(schema):
                return
            original(self, doc, schema)

        templates.TemplateLoader._check_context_schema = patched
    plugins = json.loads(Path(manifest_path).read_text(encoding="utf-8"))["plugins"]
    eps = [FakeEntryPoint.of(p["entry_point"], make_plugin([p["namespace"]], [Path(p["templates_dir"])],
                                                           {h: NoopHandler for h in p["handlers"]}),
                             dist=p["dist"], version=p["version"]) for p in plugins]  # fmt: skip
    t0 = time.perf_counter()
    paused = "gc" in variant and gc.isenabled()
    if paused:
        gc.disable()
    try:
        catalog = load_catalog(HostSettings(), entry_points=eps)
    finally:
        if paused:
            gc.enable()
    seconds = time.perf_counter() - t0
    expected = sum(p["templates"] for p in plugins)
    startup.check(not catalog.failures and catalog.registry.template_count == expected, "incomplete catalogue")
    return {"variant": variant, "seconds": seconds, "templates": expected}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugins", type=int, nargs="+", default=[200])
    parser.add_argument("--templates-per-plugin", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("MANIFEST", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    root = Path(tempfile.mkdtemp(prefix="tasker-fastpath-"))
    try:
        entries = startup.generate(root, max(args.plugins), args.templates_per_plugin)
        print(check_predicate(root))
        variants = ("today", "meta", "gc", "meta+gc")
        results: dict[tuple[int, str], list[float]] = {}
        for _ in range(args.repeat):
            for n in sorted(set(args.plugins)):
                manifest = root / f"manifest_{n}.json"
                manifest.write_text(json.dumps({"plugins": entries[:n]}), encoding="utf-8")
                for variant in variants:
                    proc = subprocess.run([sys.executable, __file__, "--worker", str(manifest), variant],
                                          capture_output=True, text=True, cwd=startup.REPO, check=True)
                    out = json.loads(proc.stdout.strip().splitlines()[-1])
                    results.setdefault((n, variant), []).append(out["seconds"])
        print("| plugins | templates | variant | median s | ms/template | vs today |")
        print("|---:|---:|---|---:|---:|---:|")
        for n in sorted(set(args.plugins)):
            today = statistics.median(results[(n, "today")])
            for variant in variants:
                s = statistics.median(results[(n, variant)])
                t = n * args.templates_per_plugin
                print(f"| {n} | {t} | {variant} | {s:.3f} | {1000 * s / t:.3f} | {100 * (s / today - 1):+.0f} % |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
