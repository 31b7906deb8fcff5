"""tasker-host: a workflow engine host where each team ships its workflows as a plugin package.

The names below are the public SDK that plugin code imports; everything else is internal.
"""

from tasker_host.errors import PermanentError, RetryableError, TaskerError
from tasker_host.four_phase import FourPhaseHandler, amount, require, step_results
from tasker_host.handler import StepHandler
from tasker_host.markers import hookimpl
from tasker_host.models import Namespace, Visibility
from tasker_host.simulation import Fault, FaultPlan, ServiceError, SimulatedService

__all__ = [
    "Fault",
    "FaultPlan",
    "FourPhaseHandler",
    "Namespace",
    "PermanentError",
    "RetryableError",
    "ServiceError",
    "SimulatedService",
    "StepHandler",
    "TaskerError",
    "Visibility",
    "amount",
    "hookimpl",
    "require",
    "step_results",
]
