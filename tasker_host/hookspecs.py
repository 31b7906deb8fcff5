"""The plugin contract: every hook a team plugin may implement.

A plugin is a distribution with an entry point in the group ``tasker_host.plugins`` that points
at a module (or object) carrying functions marked with :data:`tasker_host.hookimpl`. Function
names must match the specs below exactly; a misspelled ``tasker_*`` hook is reported as a load
failure of that plugin.

Registration hooks (``tasker_namespaces``, ``tasker_templates``, ``tasker_step_handlers``) are
synchronous, take no arguments and are called once per plugin at start-up. The host stamps every
item they return with its provenance (entry point, distribution name and version). A plugin whose
registration hook raises is recorded as a failed plugin and contributes nothing; the other plugins
still load (unless the host runs in strict mode).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tasker_host.markers import hookspec

if TYPE_CHECKING:  # pragma: no cover
    from importlib.resources.abc import Traversable
    from os import PathLike

    from tasker_host.auth import Principal
    from tasker_host.engine.events import LifecycleEvent
    from tasker_host.engine.invocation import InvocationRequest, InvocationRoute
    from tasker_host.handler import StepHandler
    from tasker_host.models import Namespace

    #: what ``tasker_templates()`` may return items of: a file or directory, or a parsed document
    TemplateSource = str | PathLike[str] | Traversable | Mapping[str, Any]
    #: a ``tasker_step_handlers()`` key: a handler name, or ``(namespace, handler name)``
    HandlerKey = str | tuple[str, str]


@hookspec
def tasker_namespaces() -> Iterable[Namespace]:
    """Return the namespaces this plugin owns.

    Called once at start-up. Each item is a :class:`tasker_host.Namespace` (name, description,
    owner). A namespace is owned by exactly one distribution: if two distributions return the
    same name, both are reported as a ``namespace_ownership`` conflict. A plugin may only
    contribute templates and handlers to namespaces it owns.
    """


@hookspec
def tasker_templates() -> Iterable[TemplateSource]:
    """Return this plugin's task templates.

    Called once at start-up. Each item is one of:

    * a path (``str`` / ``pathlib.Path``) or an ``importlib.resources`` Traversable to a ``.yaml``
      / ``.yml`` file, or to a directory whose YAML files are loaded recursively in sorted order;
    * an already-parsed mapping in the template document format (``docs/templates.md``).

    Every template's ``namespace_name`` must be a namespace this plugin owns; the key
    ``(namespace, name, version)`` must be unique across all plugins.
    """


@hookspec
def tasker_step_handlers() -> Mapping[HandlerKey, type[StepHandler]]:
    """Return the step handler classes this plugin provides, by handler name.

    Called once at start-up. Keys are the strings templates use in ``handler_class`` (any string,
    e.g. ``"Payments::StepHandlers::ValidatePaymentEligibilityHandler"``); values are
    :class:`tasker_host.StepHandler` subclasses. A plain string key registers the handler in every
    namespace the plugin owns. A ``(namespace, name)`` tuple key registers it in that namespace
    only, which must be one the plugin owns. Handler names are resolved inside the template's own
    namespace, so two teams may use the same handler name.
    """


# -- behaviour hooks ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def tasker_route_invocation(request: InvocationRequest) -> InvocationRoute | None:
    """Decide how a cross-namespace call (``ctx.invoke``) is delivered.

    Called for every ``ctx.invoke``. ``request`` is a
    :class:`tasker_host.engine.invocation.InvocationRequest` (caller task and step, target
    namespace, name and version spec, context, wait flag, invocation key, correlation id). Return a
    route (:class:`tasker_host.engine.invocation.InvocationRoute`: an object with ``async def
    deliver(request) -> InvocationResult``), or ``None`` for no opinion. The first non-``None``
    result wins; the host's built-in in-process route runs last.
    """


@hookspec(firstresult=True)
def tasker_authorize_invocation(caller_namespace: str, target_namespace: str, target_name: str,
                                visibility: str) -> bool | None:
    """May ``caller_namespace`` invoke ``target_namespace.target_name``?

    Called before a local cross-namespace call is delivered. Return ``True`` to allow, ``False``
    to deny, ``None`` for no opinion. Without an opinion, host configuration decides (default:
    a namespace may invoke its own templates and other namespaces' ``public`` ones).
    """


@hookspec
def tasker_on_event(event: LifecycleEvent) -> None:
    """Observe a lifecycle event (a :class:`tasker_host.engine.events.LifecycleEvent`).

    Called after the change is committed, for task created/started/completed/failed/cancelled
    and step started/completed/failed/retrying; every event carries namespace, name, version and
    ids. Observers are isolated: an exception is logged with the plugin's name and never changes
    the run. Keep observers fast; they run on the engine's event loop.
    """


@hookspec(firstresult=True)
def tasker_authorize(principal: Principal, action: str, namespace: str) -> bool | None:
    """May ``principal`` perform ``action`` on tasks of ``namespace`` (REST API)?

    Called for every API request that touches a namespace. ``principal`` is a
    :class:`tasker_host.auth.Principal` (name, admin flag, namespace grants); ``action`` is one of
    ``create``, ``cancel``, ``retry``, ``resolve``, ``signal``, ``audit`` (manage actions;
    ``signal``: send an event to a task; ``audit``: read the namespace's audit trail) or ``show``,
    ``index`` (view actions). Return ``True`` to allow, ``False`` to deny, ``None`` for no opinion;
    without an opinion the default policy applies (manage own namespaces, view own and ``shared``,
    admins everything). The first non-``None`` answer wins. ``ctx.send`` from a handler asks it
    too, for the principal ``namespace:<caller namespace>`` (a manager of the caller's namespace)
    and ``action="signal"``.
    """
