"""Simulated services of the Payments team: gateway, fraud screening, ledger, notifications.

Answers are deterministic and derived from the inputs, so a retried call returns the same ids
(idempotent). Every call first plays the step's :class:`~tasker_host.testing.simulation.Fault`
(the fault plan of the task context's ``simulate`` key or ``TASKER_SIMULATE``). Failures are
typed: :class:`~tasker_host.ServiceRejected` (permanent), :class:`~tasker_host.ServiceUnavailable`
(retried).

* A payment id must start with ``pay_`` (otherwise: not found). Its captured amount is derived
  from the id: between 10 000 and 99 999 cents, so ``pay_123`` can refund 4 999.
* A payment method id must start with ``pm_``; one containing ``expired`` is expired.
* A customer's fraud score is 0-39, plus 50 for charges over 1 000 000 cents.

Handlers get their clients from :meth:`tasker_payments.base.PaymentsHandler.services`, which a
test replaces to give them other ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasker_host import ServiceRejected, StepContext
from tasker_host.testing.simulation import SimulatedService, digest, now_iso

BRANDS = ("visa", "mastercard", "amex", "discover")


class PaymentGateway(SimulatedService):
    name = "Payment gateway"

    def _payment(self, payment_id: str) -> dict[str, Any]:
        if not str(payment_id).startswith("pay_"):
            raise ServiceRejected(f"{self.name}: payment {payment_id} not found")
        captured = 10_000 + int(digest(payment_id)[:8], 16) % 90_000
        return {"payment_id": payment_id, "amount": captured, "currency": "USD", "gateway": "simpay"}

    async def check_refund_eligibility(self, payment_id: str, refund_amount: float) -> dict[str, Any]:
        status = await self.begin()
        payment = self._payment(payment_id)
        eligible = refund_amount <= payment["amount"]
        return {
            **payment,
            "status": status or ("eligible" if eligible else "ineligible"),
            "requested_amount": refund_amount,
        }

    async def refund(self, payment_id: str, refund_amount: float, currency: str) -> dict[str, Any]:
        status = await self.begin()
        return {
            "refund_id": "re_" + digest("refund", payment_id, refund_amount)[:16],
            "status": status or "succeeded",
            "payment_id": payment_id,
            "amount": refund_amount,
            "currency": currency,
            "processed_at": now_iso(),
        }

    async def verify_method(self, payment_method_id: str) -> dict[str, Any]:
        status = await self.begin()
        if not str(payment_method_id).startswith("pm_"):
            raise ServiceRejected(f"{self.name}: payment method {payment_method_id} not found")
        h = digest("method", payment_method_id)
        return {
            "payment_method_id": payment_method_id,
            "status": status or ("expired" if "expired" in payment_method_id else "valid"),
            "brand": BRANDS[int(h[:2], 16) % len(BRANDS)],
            "last4": f"{int(h[2:8], 16) % 10_000:04d}",
        }

    async def charge(self, payment_method_id: str, amount: float, currency: str,
                     idempotency_key: str) -> dict[str, Any]:
        status = await self.begin()
        return {
            "charge_id": "ch_" + digest("charge", idempotency_key, payment_method_id, amount)[:16],
            "status": status or "succeeded",
            "amount": amount,
            "currency": currency,
            "charged_at": now_iso(),
        }


class FraudScreen(SimulatedService):
    name = "Fraud screening service"

    async def score(self, customer_id: str, amount: float) -> dict[str, Any]:
        status = await self.begin()
        score = int(digest("fraud", customer_id)[:4], 16) % 40 + (50 if amount > 1_000_000 else 0)
        return {"status": status or "scored", "score": score, "model": "sim-risk-3"}


class PaymentLedger(SimulatedService):
    name = "Payment ledger"

    async def record_refund(self, payment_id: str, refund_id: str, refund_amount: float,
                            original_amount: float) -> dict[str, Any]:
        status = await self.begin()
        return {
            "status": status or "recorded",
            "record_id": "rec_" + digest("ledger", refund_id)[:12],
            "payment_id": payment_id,
            "refund_id": refund_id,
            "payment_status": "refunded" if refund_amount >= original_amount else "partially_refunded",
            "updated_at": now_iso(),
        }


class Notifier(SimulatedService):
    name = "Notification service"

    async def send(self, template: str, recipient: str, reference: str) -> dict[str, Any]:
        status = await self.begin()
        return {
            "status": status or "sent",
            "message_id": "msg_" + digest("notify", template, recipient, reference)[:12],
            "channel": "email",
            "template": template,
            "recipient": recipient,
            "sent_at": now_iso(),
        }


@dataclass(frozen=True)
class PaymentsServices:
    """The service clients a Payments handler calls during one attempt."""

    gateway: PaymentGateway
    fraud: FraudScreen
    ledger: PaymentLedger
    notifier: Notifier


def simulated_services(ctx: StepContext) -> PaymentsServices:
    """The simulated services, behaving as the fault plan has them for ``ctx``'s attempt."""
    return PaymentsServices(PaymentGateway.for_step(ctx), FraudScreen.for_step(ctx),
                            PaymentLedger.for_step(ctx), Notifier.for_step(ctx))
