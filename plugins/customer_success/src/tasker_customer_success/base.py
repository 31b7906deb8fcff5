"""What the Customer Success team's step handlers share on top of the host's four-phase handler.

The pattern itself (phases, status checks, input helpers) is :class:`tasker_host.FourPhaseHandler`.
Only the team's own choices live here: the support platform may report a ticket ``closed``,
which no handler retries, and where the handlers' service clients come from.
"""

from __future__ import annotations

from typing import Any

from tasker_host import FourPhaseHandler, StepContext

from tasker_customer_success.services import CustomerSuccessServices, simulated_services

REFUSED_STATUSES = frozenset({"declined", "closed"})  # permanent whatever the handler


class CustomerSuccessHandler(FourPhaseHandler):
    """Base class of the Customer Success team's step handlers.

    Answered ``declined`` or ``closed`` is permanent for every handler.
    """

    refused_statuses = REFUSED_STATUSES

    def services(self, ctx: StepContext) -> CustomerSuccessServices:
        """The service clients of this attempt: the simulated ones (``services.py``). A test
        gives the handlers others with ``monkeypatch.setattr(CustomerSuccessHandler,
        "services", lambda self, ctx: CustomerSuccessServices(...))``.
        """
        return simulated_services(ctx)

    async def delegate(self, ctx: StepContext, inputs: dict[str, Any], what: str) -> dict[str, Any]:
        """``invoke_workflow`` to the ``target_*`` of ``inputs`` (the handler_config), through
        :class:`~tasker_host.testing.simulation.TaskerApi` (which may answer first)."""
        namespace = inputs["target_namespace"]
        if status := await self.services(ctx).tasker.reach(namespace):
            return {"status": status}
        return await self.invoke_workflow(ctx, namespace, inputs["target_workflow"],
                                          version=inputs["target_version"],
                                          context=inputs["context"], what=what)
