"""Who may invoke whom across namespaces: host rules, then plugins' hook, then visibility."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from tasker_host.errors import ConfigurationError
from tasker_host.models import Visibility


@dataclass(frozen=True, slots=True)
class InvocationRule:
    """``caller->namespace`` or ``caller->namespace.name`` (``*`` as caller matches any)."""

    caller: str
    namespace: str
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> InvocationRule:
        caller, arrow, target = text.strip().partition("->")
        namespace, _, name = target.strip().partition(".")
        if not arrow or not caller.strip() or not namespace:
            raise ConfigurationError(f"invalid invocation rule {text!r}: expected CALLER->NAMESPACE[.NAME]")
        return cls(caller.strip(), namespace, name or None)

    def matches(self, caller: str, namespace: str, name: str) -> bool:
        return (self.caller in ("*", caller) and self.namespace == namespace
                and self.name in (None, name))


@dataclass(frozen=True, slots=True)
class InvocationPolicy:
    """Decides a cross-namespace call, in this order:

    1. a host ``deny`` rule forbids it (the operator has the last word);
    2. a plugin's ``tasker_authorize_invocation`` opinion (True/False) decides it;
    3. a host ``allow`` rule permits it (e.g. a private template for one partner team);
    4. otherwise a namespace may invoke its own templates and other namespaces' public ones.
    """

    allow: tuple[InvocationRule, ...] = ()
    deny: tuple[InvocationRule, ...] = ()

    @classmethod
    def from_rules(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> InvocationPolicy:
        return cls(tuple(map(InvocationRule.parse, allow)), tuple(map(InvocationRule.parse, deny)))

    def permits(self, manager: pluggy.PluginManager, caller: str, namespace: str, name: str,
                visibility: Visibility) -> bool:
        if any(r.matches(caller, namespace, name) for r in self.deny):
            return False
        opinion = manager.hook.tasker_authorize_invocation(
            caller_namespace=caller, target_namespace=namespace, target_name=name, visibility=visibility.value)
        if opinion is not None:
            return bool(opinion)
        if any(r.matches(caller, namespace, name) for r in self.allow):
            return True
        return caller == namespace or visibility is Visibility.PUBLIC
