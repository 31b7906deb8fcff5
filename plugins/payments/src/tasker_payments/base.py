"""What the Payments team's step handlers share on top of the host's four-phase handler.

The pattern itself (phases, status checks, input helpers) is :class:`tasker_host.FourPhaseHandler`.
Only the team's own choices live here: where the handlers' service clients come from.
"""

from __future__ import annotations

from tasker_host import FourPhaseHandler, StepContext

from tasker_payments.services import PaymentsServices, simulated_services


class PaymentsHandler(FourPhaseHandler):
    """Base class of the Payments team's step handlers.

    An answered ``declined`` is permanent for every handler (the host's default).
    """

    def services(self, ctx: StepContext) -> PaymentsServices:
        """The service clients of this attempt: the simulated ones (``services.py``). A test
        gives the handlers others with
        ``monkeypatch.setattr(PaymentsHandler, "services", lambda self, ctx: PaymentsServices(...))``.
        """
        return simulated_services(ctx)
