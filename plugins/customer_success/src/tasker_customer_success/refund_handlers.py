"""Step handlers of ``customer_success.process_refund`` (1.3.3, and 1.4.0 whose approval step
waits for a manager's ``approval`` event).

The refund itself is the Payments team's business: ``execute_refund_workflow`` delegates to
``payments.process_refund`` through ``ctx.invoke`` with the version range in its handler_config.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tasker_host import EventTimeoutError, PermanentError, StepContext, amount, require, step_results
from tasker_host.testing.simulation import digest, now_iso

from tasker_customer_success.base import CustomerSuccessHandler

VALIDATE_STEP = "validate_refund_request"
POLICY_STEP = "check_refund_policy"
APPROVAL_STEP = "get_manager_approval"
DELEGATE_STEP = "execute_refund_workflow"
PAYMENTS_REFUND_REASONS = ("customer_request", "fraud", "system_error", "chargeback")
DELEGATION_CONFIG = ("target_namespace", "target_workflow", "target_version")


def payments_refund_reason(text: Any) -> str:
    """Map the customer's free-text reason to the payments schema's enum."""
    key = str(text or "").strip().lower().replace(" ", "_").replace("-", "_")
    return key if key in PAYMENTS_REFUND_REASONS else "customer_request"


def correlation_id(ctx: StepContext) -> str:
    """The caller's correlation id, else the task's, else one derived from the task id."""
    return (ctx.task.context.get("correlation_id") or ctx.task.correlation_id
            or "cs-" + digest("correlation", ctx.task.id)[:16])


class ValidateRefundRequestHandler(CustomerSuccessHandler):
    """Check the ticket is active and find the payment it refers to."""

    ok_statuses = frozenset({"open", "in_progress"})
    permanent_statuses = frozenset({"cancelled", "duplicate"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        fields = ("ticket_id", "customer_id", "refund_amount")
        inputs = require(ctx.task.context, fields, "refund validation")
        inputs["refund_amount"] = amount(inputs["refund_amount"], "refund_amount")
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        platform = self.services(ctx).platform
        return await platform.get_ticket(inputs["ticket_id"], inputs["customer_id"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "request_validated": True,
            "ticket_id": output["ticket_id"],
            "customer_id": output["customer_id"],
            "ticket_status": output["status"],
            "customer_tier": output["customer_tier"],
            "original_purchase_date": output["purchase_date"],
            "payment_id": output["payment_id"],
            "account_manager_id": output["account_manager_id"],
            "validation_timestamp": now_iso(),
        }


class CheckRefundPolicyHandler(CustomerSuccessHandler):
    """Check amount and refund window against the customer's tier; decide if approval is needed."""

    ok_statuses = frozenset({"compliant"})
    permanent_statuses = frozenset({"violation"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        fields = ("customer_tier", "original_purchase_date")
        inputs = require(step_results(ctx, VALIDATE_STEP), fields, "refund policy check")
        inputs["refund_amount"] = amount(ctx.task.context.get("refund_amount"), "refund_amount")
        inputs["requires_approval"] = ctx.task.context.get("requires_approval", True) is not False
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        policy = await self.services(ctx).policy.check(
            inputs["customer_tier"], inputs["refund_amount"], inputs["original_purchase_date"])
        return {**policy, "refund_amount": inputs["refund_amount"],
                "approval_requested": inputs["requires_approval"]}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        over_limit = output["refund_amount"] > output["auto_approve_limit"]
        return {
            "policy_checked": True,
            "policy_compliant": True,
            "customer_tier": output["customer_tier"],
            "max_allowed_amount": output["max_refund_amount"],
            "refund_window_days": output["refund_window_days"],
            "days_since_purchase": output["days_since_purchase"],
            "requires_approval": output["approval_requested"] or over_limit,
        }


class GetManagerApprovalHandler(CustomerSuccessHandler):
    """Ask the account manager to approve, or auto-approve small refunds that need no approval."""

    ok_statuses = frozenset({"approved"})
    permanent_statuses = frozenset({"rejected"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        policy = require(step_results(ctx, POLICY_STEP), ("requires_approval",), "approval")
        ticket = require(step_results(ctx, VALIDATE_STEP), ("ticket_id", "account_manager_id"),
                         "approval")
        return {**policy, **ticket,
                "refund_amount": amount(ctx.task.context.get("refund_amount"), "refund_amount"),
                "notes": ctx.task.context.get("agent_notes") or ""}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        approvals = self.services(ctx).approvals
        if not inputs["requires_approval"]:
            return await approvals.auto_approve(inputs["ticket_id"], inputs["refund_amount"])
        return await approvals.request(inputs["ticket_id"], inputs["refund_amount"],
                                       inputs["account_manager_id"], inputs["notes"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "approval_obtained": output["status"] == "approved",
            "approval_id": output["approval_id"],
            "manager_id": output["manager_id"],
            "auto_approved": output["auto_approved"],
            "approved_at": output["decided_at"],
        }


APPROVAL_EVENT = "approval"


class WaitForManagerApprovalHandler(GetManagerApprovalHandler):
    """1.4.0: refunds the policy auto-approves pass at once (as in 1.3.3); the others wait for an
    ``approval`` event ``{"approved": bool, "approver": str, "note": str}`` (its schema is the
    step's ``handler_config.events.approval.schema``) for ``approval_timeout_hours``. A rejection,
    or no decision in time, fails the refund for good."""

    async def process(self, ctx: StepContext) -> Any:
        inputs = self.extract_inputs(ctx)
        if not inputs["requires_approval"]:
            return await super().process(ctx)  # auto-approval through the approval service
        try:
            decision = ctx.event(APPROVAL_EVENT)
        except EventTimeoutError:
            hours = ctx.config.get("approval_timeout_hours", 48)
            raise PermanentError(f"no manager decision on ticket {inputs['ticket_id']} within {hours} hours") \
                from None
        if decision is None:
            ctx.log.info("waiting for manager %s to approve %s", inputs["account_manager_id"], inputs["refund_amount"])
            hours = float(ctx.config.get("approval_timeout_hours", 48))
            return ctx.wait_for(APPROVAL_EVENT, timeout=timedelta(hours=hours))
        if decision["approved"] is not True:
            raise PermanentError(f"refund rejected by {decision['approver']}: {decision.get('note') or 'no note'}")
        return {"status": "approved", "auto_approved": False, "manager_id": decision["approver"],
                "approval_id": "appr_" + digest("approval-event", ctx.task.id, decision["approver"])[:12],
                "decided_at": now_iso(), "note": decision.get("note", "")}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {**super().shape(ctx, output), "note": output.get("note", "")}


class ExecuteRefundWorkflowHandler(CustomerSuccessHandler):
    """Delegate the refund to ``target_namespace.target_workflow`` at ``target_version``."""

    ok_statuses = frozenset({"complete", "resolved_manually"})
    permanent_statuses = frozenset({"error", "cancelled"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        config = require(ctx.config, DELEGATION_CONFIG, "refund delegation (handler_config)")
        approval = step_results(ctx, APPROVAL_STEP)
        if approval.get("approval_obtained") is not True:
            raise PermanentError("Manager approval must be obtained before executing refund")
        payment = require(step_results(ctx, VALIDATE_STEP), ("payment_id",), "refund delegation")
        task = require(ctx.task.context, ("ticket_id", "refund_amount"), "refund delegation")
        child_context = {
            "payment_id": payment["payment_id"],
            "refund_amount": amount(task["refund_amount"], "refund_amount"),
            "refund_reason": payments_refund_reason(ctx.task.context.get("refund_reason")),
            "initiated_by": "customer_success",
            "ticket_id": task["ticket_id"],
            "approval_id": approval.get("approval_id"),
            "correlation_id": correlation_id(ctx),
        }
        return {**config, "context": child_context}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        child = await self.delegate(ctx, inputs, "the refund")
        refund = child.pop("results", {}).get("process_gateway_refund") or {}
        return {**child, "refund_id": refund.get("refund_id")}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "task_delegated": True,
            "target_namespace": ctx.config["target_namespace"],
            "target_workflow": ctx.config["target_workflow"],
            "target_version": ctx.config["target_version"],
            "delegated_task_id": output["task_id"],
            "delegated_full_name": output["full_name"],
            "delegated_version": output["version"],
            "delegated_task_status": output["status"],
            "gateway_refund_id": output["refund_id"],
            "correlation_id": output["correlation_id"],
            "delegation_timestamp": now_iso(),
        }


class UpdateTicketStatusHandler(CustomerSuccessHandler):
    """Resolve the ticket with a reference to the delegated payments task."""

    ok_statuses = frozenset({"updated"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        fields = ("delegated_task_id", "delegated_full_name")
        delegation = step_results(ctx, DELEGATE_STEP)
        inputs = require(delegation, fields, "ticket update")
        inputs["gateway_refund_id"] = delegation.get("gateway_refund_id")
        return {**inputs, **require(ctx.task.context, ("ticket_id",), "ticket update")}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        note = f"Refund delegated to {inputs['delegated_full_name']} ({inputs['delegated_task_id']})"
        platform = self.services(ctx).platform
        update = await platform.update_ticket(inputs["ticket_id"], "resolved", note)
        return {**update, "refund_reference": inputs["delegated_task_id"],
                "gateway_refund_id": inputs["gateway_refund_id"]}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "ticket_updated": True,
            "ticket_id": output["ticket_id"],
            "ticket_status": output["ticket_status"],
            "refund_reference": output["refund_reference"],
            "gateway_refund_id": output["gateway_refund_id"],
            "updated_at": output["updated_at"],
        }
