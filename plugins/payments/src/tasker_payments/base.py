"""What the Payments team's step handlers share on top of the host's four-phase handler.

The pattern itself (phases, status checks, service-error classification, input helpers) is
:class:`tasker_host.FourPhaseHandler`; the simulated services and their fault plan are
:mod:`tasker_host.simulation`. Only the team's own choices live here.
"""

from __future__ import annotations

from tasker_host import FourPhaseHandler


class PaymentsHandler(FourPhaseHandler):
    """Base class of the Payments team's step handlers.

    A service error saying ``declined`` or ``closed`` is permanent too; an answered ``declined``
    (the simulated outcome) is permanent for every handler (the host's default).
    """

    permanent_markers = (*FourPhaseHandler.permanent_markers, "declined", "closed")
