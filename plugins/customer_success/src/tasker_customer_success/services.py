"""Simulated services of the Customer Success team: support platform, refund policy, approvals,
notifications and paging.

Answers are deterministic and derived from the inputs, so a retried call returns the same ids.
Every call first plays the step's :class:`~tasker_host.testing.simulation.Fault` (the fault plan
of the task context's ``simulate`` key or ``TASKER_SIMULATE``, which also knows the team's
``closed`` outcome).

* A ticket is ``open``; its customer tier, purchase date (0-19 days ago), payment id
  (``pay_...``) and account manager are derived from ticket and customer ids.
* Refund policy per tier: see ``TIER_POLICY`` (amounts in cents).

Handlers get their clients from
:meth:`tasker_customer_success.base.CustomerSuccessHandler.services`, which a test replaces to
give them other ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from tasker_host import StepContext
from tasker_host.testing.simulation import FaultPlan, SimulatedService, TaskerApi, digest, now_iso

FAULT_PLAN = FaultPlan().answering_also("closed")  # the platform may report a ticket closed
TIERS = ("standard", "gold", "premium")
TIER_POLICY = {  # tier -> (max refund, refund window in days, auto-approval limit)
    "standard": (50_000, 30, 2_500),
    "gold": (100_000, 60, 10_000),
    "premium": (250_000, 90, 25_000),
}


class CustomerServicePlatform(SimulatedService):
    name = "Customer service platform"

    async def get_ticket(self, ticket_id: str, customer_id: str) -> dict[str, Any]:
        status = await self.begin()
        h = digest("ticket", ticket_id, customer_id)
        purchased = date.fromordinal(date.today().toordinal() - int(h[:4], 16) % 20)
        return {
            "ticket_id": ticket_id,
            "customer_id": customer_id,
            "status": status or "open",
            "customer_tier": TIERS[int(h[4:6], 16) % len(TIERS)],
            "purchase_date": purchased.isoformat(),
            "payment_id": "pay_" + h[6:18],
            "account_manager_id": "mgr_" + h[18:24],
        }

    async def update_ticket(self, ticket_id: str, new_status: str, note: str) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "updated", "ticket_id": ticket_id, "ticket_status": new_status,
                "note": note, "updated_at": now_iso()}

    async def record_escalation(self, ticket_id: str, level: int, *references: Any) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "recorded", "ticket_id": ticket_id, "escalation_level": level,
                "escalation_id": "esc_" + digest("escalation", ticket_id, level, *references)[:12],
                "recorded_at": now_iso()}


class RefundPolicyService(SimulatedService):
    name = "Refund policy service"

    async def check(self, customer_tier: str, refund_amount: float,
                    purchase_date: str) -> dict[str, Any]:
        status = await self.begin()
        max_amount, window, auto_limit = TIER_POLICY.get(customer_tier, TIER_POLICY["standard"])
        days = (date.today() - date.fromisoformat(purchase_date)).days
        compliant = refund_amount <= max_amount and days <= window
        return {
            "status": status or ("compliant" if compliant else "violation"),
            "customer_tier": customer_tier,
            "max_refund_amount": max_amount,
            "refund_window_days": window,
            "days_since_purchase": days,
            "auto_approve_limit": auto_limit,
        }


class ApprovalService(SimulatedService):
    name = "Approval service"

    async def request(self, ticket_id: str, refund_amount: float, manager_id: str,
                      notes: str) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "approved", "auto_approved": False, "manager_id": manager_id,
                "approval_id": "appr_" + digest("approval", ticket_id, refund_amount)[:12],
                "notes": notes, "decided_at": now_iso()}

    async def auto_approve(self, ticket_id: str, refund_amount: float) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "approved", "auto_approved": True, "manager_id": None,
                "approval_id": "auto_" + digest("approval", ticket_id, refund_amount)[:12],
                "notes": "", "decided_at": now_iso()}


class Notifier(SimulatedService):
    name = "Notification service"

    async def send(self, template: str, recipient: str, reference: str) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "sent", "channel": "email", "recipient": recipient,
                "message_id": "msg_" + digest("notify", template, recipient, reference)[:12],
                "sent_at": now_iso()}


class Pager(SimulatedService):
    name = "Paging service"

    async def page(self, service: str, summary: str, severity: str) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "triggered", "service": service, "severity": severity,
                "incident_id": "inc_" + digest("page", service, summary, severity)[:12],
                "paged_at": now_iso()}


@dataclass(frozen=True)
class CustomerSuccessServices:
    """The service clients a Customer Success handler calls during one attempt."""

    platform: CustomerServicePlatform
    policy: RefundPolicyService
    approvals: ApprovalService
    notifier: Notifier
    pager: Pager
    tasker: TaskerApi


def simulated_services(ctx: StepContext) -> CustomerSuccessServices:
    """The simulated services, behaving as the fault plan has them for ``ctx``'s attempt."""
    fault = FAULT_PLAN.fault_for(ctx)
    return CustomerSuccessServices(CustomerServicePlatform(fault), RefundPolicyService(fault),
                                   ApprovalService(fault), Notifier(fault), Pager(fault),
                                   TaskerApi(fault))
