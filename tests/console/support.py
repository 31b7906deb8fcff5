"""A small two-team host for the console's tests: ``payments`` and ``customer_success``
namespaces (fake plugins), steps driven by the task context:

``{"plan": {"step": "ok" | "fail" | "gate"}}``: ``fail`` logs a warning (``ctx.log``) and raises
a permanent error until the step is marked fixed; ``gate`` blocks (a worker thread) until the test
opens that step's gate.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tasker_host import PermanentError, StepHandler
from tasker_host.engine.retry import RetryPolicy
from tasker_host.host import Host, build_host
from tasker_host.models import Namespace
from tasker_host.settings import HostSettings
from tasker_host.store.sql.engine import upgrade
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc
from tasker_host.tokens import issue_token

GATE_TIMEOUT = 30.0


class Plan:
    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = defaultdict(threading.Event)
        self.fixed: set[str] = set()

    def open_all(self) -> None:
        for gate in list(self.gates.values()):
            gate.set()


def planned_handler(plan: Plan) -> type[StepHandler]:
    class Planned(StepHandler):
        def process(self, ctx: Any) -> Any:
            action = ctx.task.context.get("plan", {}).get(ctx.step_name, "ok")
            if action == "fail" and ctx.step_name not in plan.fixed:
                ctx.log.warning("declining the card in %s (attempt %d)", ctx.step_name, ctx.attempt)
                raise PermanentError(f"{ctx.step_name} failed: card declined")
            if action == "gate":
                plan.gates[ctx.step_name].wait(GATE_TIMEOUT)
            return {"step": ctx.step_name, "seen": sorted(ctx.results)}

    return Planned


def _steps(*spec: tuple[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    return [{"name": n, "handler_class": "Planned", "depends_on_steps": list(d), "default_retryable": False}
            for n, d in spec]


def entry_points(plan: Plan) -> list[FakeEntryPoint]:
    handler = planned_handler(plan)
    payments = make_plugin(
        namespaces=[Namespace("payments", "Card payments and refunds", "payments-team")],
        handlers={"Planned": handler},
        templates=[template_doc("payments", "refund", "1.0.0",
                                steps=_steps(("validate", ()), ("charge", ("validate",)), ("notify", ("validate",)),
                                             ("finish", ("charge", "notify")))),
                   template_doc("payments", "refund", "0.9.0", steps=_steps(("validate", ())),
                                deprecated="use 1.0.0")])
    success = make_plugin(
        namespaces=[Namespace("customer_success", "Tickets and escalations", "cs-team")],
        handlers={"Planned": handler},
        templates=[template_doc("customer_success", "escalate_ticket", "2.0.0",
                                steps=_steps(("triage", ()), ("page_oncall", ("triage",))))])
    return [FakeEntryPoint.of("payments", payments, dist="tasker-payments-test", version="1.0.0"),
            FakeEntryPoint.of("customer_success", success, dist="tasker-cs-test", version="2.0.0")]


def make_host(db: Path | str, plan: Plan) -> Host:
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    if isinstance(db, str):
        upgrade(url)
    return build_host(HostSettings(database_url=url), entry_points=entry_points(plan),
                      policy=RetryPolicy(base_seconds=0.01, jitter=0.0))


def issue(host: Host) -> dict[str, str]:
    now = time.time()
    grants = {"payments": ["payments"], "cs": ["customer_success"], "payments_viewer": ["payments:view"]}
    tokens = {name: issue_token(host.tokens, name, grants=g, now=now).token for name, g in grants.items()}
    tokens["admin"] = issue_token(host.tokens, "admin", admin=True, now=now).token
    return tokens
