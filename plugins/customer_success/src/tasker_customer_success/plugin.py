"""The Customer Success team's tasker-host plugin: namespace ``customer_success``.

Registered through the entry point ``customer_success = "tasker_customer_success.plugin"`` in
the group ``tasker_host.plugins``. The hooks only return values; nothing runs at import time.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from tasker_host import Namespace, StepHandler, hookimpl

from tasker_customer_success.escalation_handlers import (
    AssessTicketHandler,
    NotifyManagerHandler,
    PageOnCallHandler,
    RecordEscalationHandler,
)
from tasker_customer_success.refund_handlers import (
    CheckRefundPolicyHandler,
    ExecuteRefundWorkflowHandler,
    GetManagerApprovalHandler,
    UpdateTicketStatusHandler,
    ValidateRefundRequestHandler,
    WaitForManagerApprovalHandler,
)

NAMESPACE = "customer_success"
HANDLER_PREFIX = "CustomerSuccess::StepHandlers::"
HANDLER_CLASSES = (
    ValidateRefundRequestHandler,
    CheckRefundPolicyHandler,
    GetManagerApprovalHandler,
    WaitForManagerApprovalHandler,
    ExecuteRefundWorkflowHandler,
    UpdateTicketStatusHandler,
    AssessTicketHandler,
    NotifyManagerHandler,
    PageOnCallHandler,
    RecordEscalationHandler,
)


@hookimpl
def tasker_namespaces() -> list[Namespace]:
    return [
        Namespace(
            NAMESPACE,
            description="Support tickets: approved refunds and escalations",
            owner="Customer Success team",
        )
    ]


@hookimpl
def tasker_templates() -> list[Any]:
    return [files(__package__) / "templates"]


@hookimpl
def tasker_step_handlers() -> dict[str, type[StepHandler]]:
    return {HANDLER_PREFIX + cls.__name__: cls for cls in HANDLER_CLASSES}
