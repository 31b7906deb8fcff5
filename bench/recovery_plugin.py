"""The plugin of ``recovery_bench.py`` (written beside a dist-info into a directory on the
workers' ``PYTHONPATH``): ``recovery.slow@1.0.0``, one step whose first attempt takes
``RECOVERY_STEP_SECONDS`` (default 60: the worker is killed during it) and whose later attempts
return at once."""

from __future__ import annotations

import os
from typing import Any

import anyio

from tasker_host import StepHandler
from tasker_host.testing import make_plugin, template_doc


class Slow(StepHandler):
    async def process(self, ctx: Any) -> dict[str, Any]:
        if ctx.attempt == 1:
            await anyio.sleep(float(os.environ.get("RECOVERY_STEP_SECONDS", "60")))
        return {"attempt": ctx.attempt, "pid": os.getpid()}


STEP = {"name": "slow", "handler_class": "Slow", "default_retry_limit": 3,
        "handler_config": {"timeout_seconds": 600}}
plugin = make_plugin(["recovery"], [template_doc("recovery", "slow", "1.0.0", [STEP])], {"Slow": Slow})
