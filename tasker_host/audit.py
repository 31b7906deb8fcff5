"""The audit trail's values: who acted (:class:`Actor`), what they did (:class:`AuditAction`), and
the rows the store appends (:class:`AuditEntry`) and lists (:class:`AuditRecord`). No I/O.

Every create, cancel, retry, resolve-step, token create / revoke and console sign-in is recorded
by the service layer (``engine/audit_trail.py``, ``tokens.py``), in the transaction of the change
itself where the store allows it. The host only ever appends rows: the store offers append and
list, no update or delete.

Who: the API and the console name the token's principal (``principal`` and ``token_name``); the
local CLI writes ``cli`` with the operating-system user that ran it. Tasks created by a running
step (``ctx.invoke``) are not audited: no person acted, and the child's parent link records it.
"""

from __future__ import annotations

import enum
import getpass
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

MAX_TEXT = 200  # the width of the text columns


class ActorKind(enum.StrEnum):
    API = "api"
    CLI = "cli"
    CONSOLE = "console"


class AuditAction(enum.StrEnum):
    TASK_CREATE = "task.create"
    TASK_CANCEL = "task.cancel"
    TASK_RETRY = "task.retry"
    STEP_RESOLVE = "step.resolve"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    CONSOLE_SIGN_IN = "console.sign_in"
    EVENT_SEND = "event.send"  # e.g. a manager's approval (docs/waiting.md)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks the service for a change, passed down from the edge that authenticated them."""

    principal: str
    kind: ActorKind
    token_name: str | None = None
    os_user: str | None = None  # the local CLI's operating-system user
    correlation_id: str | None = None  # of the request (e.g. its X-Correlation-Id header)

    @classmethod
    def cli(cls) -> Actor:
        """The local CLI: ``cli`` and the operating-system user running it."""
        try:
            user: str | None = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (e.g. some containers)
            user = None
        return cls("cli", ActorKind.CLI, os_user=user)

    @classmethod
    def of_token(cls, name: str, kind: ActorKind, correlation_id: str | None = None) -> Actor:
        """A principal authenticated by an API token (the token's name is the principal's)."""
        return cls(name, kind, token_name=name, correlation_id=correlation_id)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A row to append."""

    at: float
    principal: str
    actor_kind: ActorKind
    action: AuditAction
    token_name: str | None = None
    os_user: str | None = None
    namespace: str | None = None  # None: not about one namespace (tokens, sign-ins)
    target: str | None = None  # a task id, a token name
    details: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None

    def with_target(self, target: str) -> AuditEntry:
        return replace(self, target=target)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    entry: AuditEntry


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Newest first. ``namespaces``: rows of these namespaces only (None: every row, those without
    a namespace too); ``since``: at or after; ``before_id``: the cursor (rows older than it)."""

    namespaces: Sequence[str] | None = None
    since: float | None = None
    before_id: int | None = None
    limit: int = 50


def entry_for(actor: Actor, action: AuditAction, at: float, *, namespace: str | None = None,
              target: str | None = None, details: Mapping[str, Any] | None = None,
              correlation_id: str | None = None) -> AuditEntry:
    """The row recording ``actor``'s ``action``; the actor's correlation id, else ``correlation_id``
    (e.g. the task's)."""
    return AuditEntry(at=at, principal=_fit(actor.principal) or "?", actor_kind=actor.kind, action=action,
                      token_name=_fit(actor.token_name), os_user=_fit(actor.os_user), namespace=namespace,
                      target=_fit(target), details=dict(details or {}),
                      correlation_id=_fit(actor.correlation_id or correlation_id))


def _fit(text: str | None) -> str | None:
    return None if text is None else text[:MAX_TEXT]


def audit_doc(record: AuditRecord) -> dict[str, Any]:
    """The JSON document of a row (``GET /audit``, ``tasker-host audit --json``)."""
    from tasker_host.views import iso

    e = record.entry
    return {"id": record.id, "at": iso(e.at),
            "principal": e.principal, "token_name": e.token_name, "actor_kind": e.actor_kind.value,
            "os_user": e.os_user, "action": e.action.value, "namespace": e.namespace, "target": e.target,
            "details": dict(e.details), "correlation_id": e.correlation_id}
