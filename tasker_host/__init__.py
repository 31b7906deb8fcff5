"""tasker-host: a workflow engine host where each team ships its workflows as a plugin package.

The names below are the public SDK that plugin code imports; everything else is internal. Test
helpers (fakes, the handler harness, the pytest plugin, simulated services) are in
:mod:`tasker_host.testing`.
"""

from tasker_host.context import InvocationResult, StepContext, TaskInfo
from tasker_host.errors import (
    EventTimeoutError,
    PermanentError,
    RetryableError,
    ServiceError,
    ServiceRejected,
    ServiceUnavailable,
    TaskerError,
)
from tasker_host.four_phase import FourPhaseHandler, amount, require, step_results
from tasker_host.handler import StepHandler
from tasker_host.markers import hookimpl
from tasker_host.models import Namespace, Visibility
from tasker_host.waiting import Wait, WakeInfo, WakeReason

__all__ = [
    "EventTimeoutError",
    "FourPhaseHandler",
    "InvocationResult",
    "Namespace",
    "PermanentError",
    "RetryableError",
    "ServiceError",
    "ServiceRejected",
    "ServiceUnavailable",
    "StepContext",
    "StepHandler",
    "TaskInfo",
    "TaskerError",
    "Visibility",
    "Wait",
    "WakeInfo",
    "WakeReason",
    "amount",
    "hookimpl",
    "require",
    "step_results",
]
