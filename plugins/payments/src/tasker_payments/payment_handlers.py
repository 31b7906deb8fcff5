"""Step handlers of ``payments.process_payment`` (3.0.0)."""

from __future__ import annotations

from typing import Any

from tasker_host import PermanentError, StepContext, amount, require, step_results

from tasker_payments.base import PaymentsHandler

METHOD_STEP = "validate_payment_method"
FRAUD_STEP = "check_fraud_score"
CHARGE_STEP = "charge_payment"
DEFAULT_MAX_SCORE = 75


def _payment_inputs(ctx: StepContext, what: str) -> dict[str, Any]:
    inputs = require(ctx.task.context, ("customer_id", "amount", "payment_method_id"), what)
    inputs["amount"] = amount(inputs["amount"], "amount")
    inputs["currency"] = ctx.task.context.get("currency") or "USD"
    return inputs


class ValidatePaymentMethodHandler(PaymentsHandler):
    """Check that the customer's payment method exists and has not expired."""

    ok_statuses = frozenset({"valid"})
    permanent_statuses = frozenset({"expired", "declined"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        return _payment_inputs(ctx, "payment method validation")

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).gateway.verify_method(inputs["payment_method_id"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "method_validated": True,
            "payment_method_id": output["payment_method_id"],
            "brand": output["brand"],
            "last4": output["last4"],
        }


class CheckFraudScoreHandler(PaymentsHandler):
    """Score the charge; above ``handler_config.max_score`` the payment is blocked for good."""

    ok_statuses = frozenset({"scored"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = _payment_inputs(ctx, "fraud screening")
        inputs["max_score"] = int(ctx.config.get("max_score", DEFAULT_MAX_SCORE))
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).fraud.score(inputs["customer_id"], inputs["amount"])

    def check_response(self, ctx: StepContext, inputs: dict[str, Any], response: Any) -> None:
        super().check_response(ctx, inputs, response)
        if response["score"] > inputs["max_score"]:
            raise PermanentError(
                f"fraud score {response['score']} exceeds {inputs['max_score']}; payment blocked"
            )

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        max_score = int(ctx.config.get("max_score", DEFAULT_MAX_SCORE))
        return {"fraud_checked": True, "approved": True, "score": output["score"],
                "max_score": max_score, "model": output["model"]}


class ChargePaymentHandler(PaymentsHandler):
    """Charge the validated method; the task id is the idempotency key, so retries are safe."""

    ok_statuses = frozenset({"succeeded"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = _payment_inputs(ctx, "charge")
        method = require(step_results(ctx, METHOD_STEP), ("payment_method_id",), "charge")
        fraud = require(step_results(ctx, FRAUD_STEP), ("approved",), "charge")
        if fraud["approved"] is not True:
            raise PermanentError("the fraud check did not approve this payment")
        return {**inputs, **method}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).gateway.charge(
            inputs["payment_method_id"], inputs["amount"], inputs["currency"], ctx.task.id
        )

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "payment_charged": True,
            "charge_id": output["charge_id"],
            "amount": output["amount"],
            "currency": output["currency"],
            "charged_at": output["charged_at"],
        }


class SendReceiptHandler(PaymentsHandler):
    """E-mail the receipt to ``customer_email`` (or the customer's address on file)."""

    ok_statuses = frozenset({"sent", "queued"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = require(step_results(ctx, CHARGE_STEP), ("charge_id",), "receipt")
        customer = require(ctx.task.context, ("customer_id",), "receipt")
        recipient = ctx.task.context.get("customer_email") or f"on-file:{customer['customer_id']}"
        return {**inputs, "recipient": recipient}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        notifier = self.services(ctx).notifier
        return await notifier.send("payment_receipt", inputs["recipient"], inputs["charge_id"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "receipt_sent": True,
            "message_id": output["message_id"],
            "recipient": output["recipient"],
            "sent_at": output["sent_at"],
        }
