"""The cost of tracing on the engine: W1 steps/s with the OpenTelemetry SDK recording every span
(task creations and step attempts) into the SDK's in-memory exporter, against the same runs
without a tracer provider (the API's no-op spans). Runs alternate (untraced, traced, untraced,
...) so that a shared machine's drift falls on both; medians are compared.

    python bench/tracing_bench.py --tasks 2000 --runs 7                         # memory, SQLite, PostgreSQL
    python bench/tracing_bench.py --backends sqlite --processor simple          # SimpleSpanProcessor

``--processor batch`` (default) is what ``serve`` / ``worker`` set up (trace_setup.py): spans are
queued as they end and a background thread exports them. ``simple`` exports each span as it
ends, on the engine's thread.
See bench/RESULTS.md ("Tracing overhead"). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_bench import drop_bench_schemas, throughput  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: E402
from workloads import W1_STEPS  # noqa: E402


def traced(processor: str, ratio: float | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider as the SDK's defaults make it (sampler: parent-based, always on), or sampling
    ``ratio`` of the traces (what OTEL_TRACES_SAMPLER=parentbased_traceidratio does)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider() if ratio is None else TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(exporter) if processor == "simple"
                                else BatchSpanProcessor(exporter, max_queue_size=65_536))
    return provider, exporter


def compare(backend: str, n: int, runs: int, processor: str, workdir: Path,
            ratio: float | None = None, freeze: bool = False) -> dict[str, float]:
    """Medians of steps/s (wall clock) and steps per CPU second of this process, untraced and
    traced, over alternating runs; and the median of each pair's overhead (a traced run against
    the untraced one just before it: what a shared machine's drift disturbs least)."""
    plain: list[dict] = []
    with_spans: list[dict] = []
    throughput(backend, "w1", max(100, n // 10), workdir)  # warm-up (imports, caches)
    for _ in range(runs):
        plain.append(throughput(backend, "w1", n, workdir, freeze=freeze))
        provider, exporter = traced(processor, ratio)
        with_spans.append(throughput(backend, "w1", n, workdir, tracer_provider=provider, freeze=freeze))
        provider.shutdown()  # (batch: the rest is exported)
        spans = len(exporter.get_finished_spans())
        expected = n * (W1_STEPS + 1)  # a span per step attempt and one per creation
        assert spans == expected or (ratio is not None and spans < expected), f"{spans} spans, expected {expected}"
    pairs = (("plain", plain), ("traced", with_spans))
    found = {f"{key}_{label}": statistics.median(r[key] for r in runs_)
             for key in ("steps_per_s", "steps_per_cpu_s") for label, runs_ in pairs}
    for key in ("steps_per_s", "steps_per_cpu_s"):  # each traced run against the untraced run just before
        pairwise = [1 - t[key] / p[key] for p, t in zip(plain, with_spans, strict=True)]
        found[f"{key}_pairwise"] = statistics.median(pairwise)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["memory", "sqlite", "postgres"])
    parser.add_argument("--processor", choices=["simple", "batch"], default="batch")
    parser.add_argument("--sample", type=float, help="sample this ratio of traces (default: every trace)")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() once the host is built, as serve and "
                        "worker do")
    args = parser.parse_args()
    sampled = "every trace" if args.sample is None else f"{args.sample:.0%} of traces"
    print(f"W1, {args.tasks} tasks per run, {args.runs} alternating runs (medians), {args.processor} span "
          f"processor, in-memory exporter, {sampled}; python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    columns = f"{'untraced':>10}{'traced':>10}{'overhead':>10}{'pairwise':>10}"
    print(f"{'backend':<10}{columns}   {columns}")
    print(f"{'':<10}{'steps/s (wall clock)':>40}   {'steps per CPU second':>40}")
    try:
        measure(args)
    finally:
        if "postgres" in args.backends:
            drop_bench_schemas()


def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            r = compare(backend, args.tasks, args.runs, args.processor, Path(tmp), args.sample, args.freeze)
            wall = (r["steps_per_s_plain"], r["steps_per_s_traced"])
            cpu = (r["steps_per_cpu_s_plain"], r["steps_per_cpu_s_traced"])
            print(f"{backend:<10}{wall[0]:>10.0f}{wall[1]:>10.0f}{1 - wall[1] / wall[0]:>10.1%}"
                  f"{r['steps_per_s_pairwise']:>10.1%}   {cpu[0]:>10.0f}{cpu[1]:>10.0f}{1 - cpu[1] / cpu[0]:>10.1%}"
                  f"{r['steps_per_cpu_s_pairwise']:>10.1%}")


if __name__ == "__main__":
    main()
