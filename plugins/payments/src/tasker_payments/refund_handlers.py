"""Step handlers of ``payments.process_refund`` (2.0.0 and 2.1.3)."""

from __future__ import annotations

from typing import Any

from tasker_host import PermanentError, StepContext, amount, require, step_results
from tasker_host.testing.simulation import now_iso

from tasker_payments.base import PaymentsHandler

ELIGIBILITY_STEP = "validate_payment_eligibility"
REFUND_STEP = "process_gateway_refund"
RECORDS_STEP = "update_payment_records"


class ValidatePaymentEligibilityHandler(PaymentsHandler):
    """Ask the gateway whether the payment exists and can refund ``refund_amount``."""

    ok_statuses = frozenset({"eligible"})
    permanent_statuses = frozenset({"ineligible", "declined"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = require(ctx.task.context, ("payment_id", "refund_amount"), "refund eligibility")
        inputs["refund_amount"] = amount(inputs["refund_amount"], "refund_amount")
        inputs["refund_reason"] = ctx.task.context.get("refund_reason") or "customer_request"
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        gateway = self.services(ctx).gateway
        return await gateway.check_refund_eligibility(inputs["payment_id"], inputs["refund_amount"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "payment_validated": True,
            "eligible": output["status"] == "eligible",
            "payment_id": output["payment_id"],
            "original_amount": output["amount"],
            "refund_amount": output["requested_amount"],
            "partial_refund": output["requested_amount"] < output["amount"],
            "refund_reason": ctx.task.context.get("refund_reason") or "customer_request",
            "currency": output["currency"],
            "gateway": output["gateway"],
            "validation_timestamp": now_iso(),
        }


class ProcessGatewayRefundHandler(PaymentsHandler):
    """Refund through the gateway; the refund id derives from the inputs, so retries are safe."""

    ok_statuses = frozenset({"succeeded", "pending"})
    permanent_statuses = frozenset({"declined", "failed"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        fields = ("payment_id", "refund_amount", "currency", "eligible")
        inputs = require(step_results(ctx, ELIGIBILITY_STEP), fields, "gateway refund")
        if inputs["eligible"] is not True:
            raise PermanentError(f"payment {inputs['payment_id']} is not eligible for a refund")
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).gateway.refund(
            inputs["payment_id"], inputs["refund_amount"], inputs["currency"]
        )

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "refund_processed": True,
            "refund_id": output["refund_id"],
            "refund_status": output["status"],
            "payment_id": output["payment_id"],
            "refund_amount": output["amount"],
            "currency": output["currency"],
            "gateway_processed_at": output["processed_at"],
        }


class UpdatePaymentRecordsHandler(PaymentsHandler):
    """Record the refund in the payment ledger (refunded or partially refunded)."""

    ok_statuses = frozenset({"recorded"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        refund = require(step_results(ctx, REFUND_STEP),
                         ("refund_id", "payment_id", "refund_amount"), "payment records update")
        eligibility = require(step_results(ctx, ELIGIBILITY_STEP), ("original_amount",),
                              "payment records update")
        return {**refund, **eligibility}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).ledger.record_refund(
            inputs["payment_id"], inputs["refund_id"], inputs["refund_amount"],
            inputs["original_amount"],
        )

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "records_updated": True,
            "record_id": output["record_id"],
            "payment_id": output["payment_id"],
            "refund_id": output["refund_id"],
            "payment_status": output["payment_status"],
            "updated_at": output["updated_at"],
        }


class NotifyCustomerHandler(PaymentsHandler):
    """Send the refund confirmation to the payment's customer."""

    ok_statuses = frozenset({"sent", "queued"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        return require(step_results(ctx, REFUND_STEP), ("refund_id", "payment_id"),
                       "customer notification")

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        recipient = f"customer-of:{inputs['payment_id']}"
        return await self.services(ctx).notifier.send("refund_confirmation", recipient, inputs["refund_id"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "notification_sent": True,
            "message_id": output["message_id"],
            "channel": output["channel"],
            "template": output["template"],
            "sent_at": output["sent_at"],
        }
