"""Benchmark workloads W1 (a 4-step chain) and W2 (1 -> 8 -> 1 fan-out/fan-in), as a plugin."""

from __future__ import annotations

import os
from typing import Any

from tasker_host import StepHandler
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc

W1_STEPS = 4
W2_STEPS = 10
#: ``TASKER_BENCH_LOG_LINES=N``: every step writes N lines through ``ctx.log`` (the cost of step logs)
LOG_LINES = int(os.environ.get("TASKER_BENCH_LOG_LINES", "0"))


class Probe:
    """Counts how many steps of one task run at the same moment (proves W2's branches overlap)."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.max_parallel = 0


def handler_for(probe: Probe) -> type[StepHandler]:
    class Work(StepHandler):
        async def process(self, ctx: Any) -> dict[str, Any]:
            task = ctx.task.id
            probe.running[task] = probe.running.get(task, 0) + 1
            probe.max_parallel = max(probe.max_parallel, probe.running[task])
            try:
                for i in range(LOG_LINES):
                    ctx.log.info("line %d of %s", i, ctx.step_name)
                if ctx.step_name.startswith("branch"):
                    import anyio

                    await anyio.lowlevel.checkpoint()  # yield once so sibling branches can start
                return {"step": ctx.step_name, "n": len(ctx.results)}
            finally:
                probe.running[task] -= 1
                if not probe.running[task]:
                    del probe.running[task]

    return Work


def w1() -> dict[str, Any]:
    names = ["s1", "s2", "s3", "s4"]
    steps = [{"name": n, "handler_class": "Work", **({"depends_on_step": names[i - 1]} if i else {})}
             for i, n in enumerate(names)]
    return template_doc("bench", "w1", "1.0.0", steps)


def w2() -> dict[str, Any]:
    branches = [f"branch_{i}" for i in range(8)]
    steps = ([{"name": "start", "handler_class": "Work"}]
             + [{"name": b, "handler_class": "Work", "depends_on_step": "start"} for b in branches]
             + [{"name": "finish", "handler_class": "Work", "depends_on_steps": branches}])
    return template_doc("bench", "w2", "1.0.0", steps)


def entry_points(probe: Probe) -> list[FakeEntryPoint]:
    plugin = make_plugin(["bench"], [w1(), w2()], {"Work": handler_for(probe)})
    return [FakeEntryPoint.of("bench", plugin, dist="tasker-bench", version="0.0.0")]
