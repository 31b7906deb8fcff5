"""Step handlers of ``customer_success.escalate_ticket`` (2.2.0).

assess_ticket fans out to notify_manager and page_on_call (concurrently), which both feed
record_escalation.
"""

from __future__ import annotations

from typing import Any

from tasker_host import PermanentError, StepContext, require, step_results

from tasker_customer_success.base import CustomerSuccessHandler

ASSESS_STEP = "assess_ticket"
NOTIFY_STEP = "notify_manager"
PAGE_STEP = "page_on_call"
SEVERITY_LEVELS = {"low": 1, "medium": 2, "high": 3, "critical": 4}
DEFAULT_PAGE_FROM = "high"
DEFAULT_ON_CALL_SERVICE = "customer-support"


class AssessTicketHandler(CustomerSuccessHandler):
    """Check the ticket is active; set the escalation level and whether to page on-call."""

    ok_statuses = frozenset({"open", "in_progress"})
    permanent_statuses = frozenset({"cancelled", "duplicate"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = require(ctx.task.context, ("ticket_id", "customer_id", "severity"), "assessment")
        page_from = ctx.config.get("page_from_severity", DEFAULT_PAGE_FROM)
        for value in (inputs["severity"], page_from):
            if value not in SEVERITY_LEVELS:
                raise PermanentError(f"unknown severity {value!r}; expected {list(SEVERITY_LEVELS)}")
        inputs["escalation_level"] = SEVERITY_LEVELS[inputs["severity"]]
        inputs["page_required"] = inputs["escalation_level"] >= SEVERITY_LEVELS[page_from]
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        ticket = await self.services(ctx).platform.get_ticket(inputs["ticket_id"],
                                                                 inputs["customer_id"])
        return {**ticket, "severity": inputs["severity"],
                "escalation_level": inputs["escalation_level"],
                "page_required": inputs["page_required"]}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "assessed": True,
            "ticket_id": output["ticket_id"],
            "customer_id": output["customer_id"],
            "customer_tier": output["customer_tier"],
            "severity": output["severity"],
            "escalation_level": output["escalation_level"],
            "page_required": output["page_required"],
            "manager_id": output["account_manager_id"],
        }


class NotifyManagerHandler(CustomerSuccessHandler):
    """E-mail the customer's account manager about the escalation."""

    ok_statuses = frozenset({"sent", "queued"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        return require(step_results(ctx, ASSESS_STEP), ("ticket_id", "manager_id"), "notification")

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).notifier.send("ticket_escalated", inputs["manager_id"],
                                          inputs["ticket_id"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"manager_notified": True, "manager_id": output["recipient"],
                "message_id": output["message_id"], "sent_at": output["sent_at"]}


class PageOnCallHandler(CustomerSuccessHandler):
    """Page the on-call engineer when the assessment asks for it; otherwise do nothing."""

    ok_statuses = frozenset({"triggered", "not_required"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        fields = ("ticket_id", "severity", "page_required")
        inputs = require(step_results(ctx, ASSESS_STEP), fields, "paging")
        summary = ctx.task.context.get("summary") or f"Escalated ticket {inputs['ticket_id']}"
        service = ctx.config.get("service", DEFAULT_ON_CALL_SERVICE)
        return {**inputs, "summary": summary, "service": service}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs["page_required"] is not True:
            return {"status": "not_required", "incident_id": None, "paged_at": None}
        return await self.services(ctx).pager.page(inputs["service"], inputs["summary"], inputs["severity"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"paged": output["status"] == "triggered", "incident_id": output["incident_id"],
                "paged_at": output["paged_at"]}


class RecordEscalationHandler(CustomerSuccessHandler):
    """Record the escalation on the ticket, with the notification and the page (if any)."""

    ok_statuses = frozenset({"recorded"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        assessment = require(step_results(ctx, ASSESS_STEP), ("ticket_id", "escalation_level"),
                             "escalation record")
        notice = require(step_results(ctx, NOTIFY_STEP), ("message_id",), "escalation record")
        page = step_results(ctx, PAGE_STEP)
        return {**assessment, **notice, "paged": page.get("paged") is True,
                "incident_id": page.get("incident_id")}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        record = await self.services(ctx).platform.record_escalation(
            inputs["ticket_id"], inputs["escalation_level"], inputs["message_id"],
            inputs["incident_id"])
        return {**record, "paged": inputs["paged"]}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "escalation_recorded": True,
            "escalation_id": output["escalation_id"],
            "ticket_id": output["ticket_id"],
            "escalation_level": output["escalation_level"],
            "paged": output["paged"],
            "recorded_at": output["recorded_at"],
        }
