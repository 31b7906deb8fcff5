"""The Payments team's tasker-host plugin: namespace ``payments``, its templates and handlers.

Registered through the entry point ``payments = "tasker_payments.plugin"`` in the group
``tasker_host.plugins``. The hooks only return values; nothing runs at import time.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from tasker_host import Namespace, StepHandler, hookimpl

from tasker_payments.payment_handlers import (
    ChargePaymentHandler,
    CheckFraudScoreHandler,
    SendReceiptHandler,
    ValidatePaymentMethodHandler,
)
from tasker_payments.refund_handlers import (
    NotifyCustomerHandler,
    ProcessGatewayRefundHandler,
    UpdatePaymentRecordsHandler,
    ValidatePaymentEligibilityHandler,
)

NAMESPACE = "payments"
HANDLER_PREFIX = "Payments::StepHandlers::"
HANDLER_CLASSES = (
    ValidatePaymentEligibilityHandler,
    ProcessGatewayRefundHandler,
    UpdatePaymentRecordsHandler,
    NotifyCustomerHandler,
    ValidatePaymentMethodHandler,
    CheckFraudScoreHandler,
    ChargePaymentHandler,
    SendReceiptHandler,
)


@hookimpl
def tasker_namespaces() -> list[Namespace]:
    return [
        Namespace(
            NAMESPACE,
            description="Payment gateway charges and refunds",
            owner="Payments team",
        )
    ]


@hookimpl
def tasker_templates() -> list[Any]:
    return [files(__package__) / "templates"]


@hookimpl
def tasker_step_handlers() -> dict[str, type[StepHandler]]:
    return {HANDLER_PREFIX + cls.__name__: cls for cls in HANDLER_CLASSES}
