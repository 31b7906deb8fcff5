"""What the Customer Success team's step handlers share on top of the host's four-phase handler.

The pattern itself (phases, status checks, service-error classification, input helpers) is
:class:`tasker_host.FourPhaseHandler`; the simulated services and their fault plan are
:mod:`tasker_host.simulation`. Only the team's own choices live here: the support platform may
report a ticket ``closed``, which no handler retries, and the fault plan can simulate it.
"""

from __future__ import annotations

from tasker_host import FaultPlan, FourPhaseHandler

REFUSED_STATUSES = frozenset({"declined", "closed"})  # permanent whatever the handler


class CustomerSuccessHandler(FourPhaseHandler):
    """Base class of the Customer Success team's step handlers.

    Answered ``declined`` or ``closed`` is permanent for every handler, and so is a service error
    saying so. The fault plan knows the extra outcome ``closed`` (the service reports the ticket
    closed).
    """

    refused_statuses = REFUSED_STATUSES
    permanent_markers = (*FourPhaseHandler.permanent_markers, "declined", "closed")
    fault_plan = FaultPlan().answering_also("closed")
