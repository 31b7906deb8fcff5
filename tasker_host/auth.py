"""Bearer tokens, principals and the namespace-scoped authorization policy.

Tokens are random (``tsk_`` + 32 url-safe bytes) and stored only as their SHA-256 digest (they
carry enough entropy that a slow hash adds nothing). A token identifies a :class:`Principal`:
an admin, or a set of namespace grants at ``manage`` or ``view`` level.

Default policy (the story's): *manage* actions (create, cancel, retry, resolve, signal) only in the
principal's own (manage-granted) namespaces; *view* actions in its granted namespaces and in
``shared``; admins may do everything. Plugins may add their own rule through the
``tasker_authorize`` hook (True allows, False denies, None has no opinion); the default applies
when no plugin has an opinion.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pluggy

from tasker_host.errors import ConfigurationError

TOKEN_PREFIX = "tsk_"
SHARED_NAMESPACE = "shared"


class Access(enum.StrEnum):
    VIEW = "view"
    MANAGE = "manage"


class Action(enum.StrEnum):
    CREATE = "create"
    CANCEL = "cancel"
    RETRY = "retry"
    RESOLVE = "resolve"
    SHOW = "show"
    INDEX = "index"
    AUDIT = "audit"  # read the namespace's audit trail (a manage action)
    SIGNAL = "signal"  # send an event to a task (a manager's approval ...): manage level by default

    @property
    def access(self) -> Access:
        return Access.VIEW if self in (Action.SHOW, Action.INDEX) else Access.MANAGE


@dataclass(frozen=True, slots=True)
class Grant:
    namespace: str
    access: Access = Access.MANAGE

    @classmethod
    def parse(cls, text: str) -> Grant:
        """``payments`` (manage), ``payments:manage`` or ``payments:view``."""
        namespace, _, level = text.strip().partition(":")
        if not namespace:
            raise ConfigurationError(f"invalid grant {text!r}: expected NAMESPACE[:manage|:view]")
        try:
            return cls(namespace, Access(level or Access.MANAGE))
        except ValueError:
            raise ConfigurationError(f"invalid grant {text!r}: the level must be manage or view") from None

    def __str__(self) -> str:
        return f"{self.namespace}:{self.access.value}"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    admin: bool = False
    grants: tuple[Grant, ...] = ()

    def access_to(self, namespace: str) -> Access | None:
        levels = {g.access for g in self.grants if g.namespace == namespace}
        return Access.MANAGE if Access.MANAGE in levels else (Access.VIEW if levels else None)

    def may_view(self, namespace: str) -> bool:
        return self.admin or namespace == SHARED_NAMESPACE or self.access_to(namespace) is not None

    def may_manage(self, namespace: str) -> bool:
        return self.admin or self.access_to(namespace) is Access.MANAGE

    def visible(self, namespaces: Iterable[str]) -> list[str] | None:
        """The namespaces of ``namespaces`` this principal may view (None: all, for admins)."""
        return None if self.admin else [ns for ns in namespaces if self.may_view(ns)]


def default_decision(principal: Principal, action: Action, namespace: str) -> bool:
    return principal.may_view(namespace) if action.access is Access.VIEW else principal.may_manage(namespace)


def authorize(manager: pluggy.PluginManager, principal: Principal, action: Action, namespace: str) -> bool:
    """A plugin's ``tasker_authorize`` opinion first, else the default policy."""
    opinion = manager.hook.tasker_authorize(principal=principal, action=action.value, namespace=namespace)
    return bool(opinion) if opinion is not None else default_decision(principal, action, namespace)


# -- tokens --------------------------------------------------------------------------------------


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    name: str
    digest: str
    admin: bool
    grants: tuple[Grant, ...]
    created_at: float
    revoked_at: float | None = None

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.admin, self.grants)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    record: TokenRecord
    token: str = field(repr=False)  # shown once, never stored


class TokenStore(Protocol):
    """Persistence of tokens (SQL and memory implementations pass the same contract tests)."""

    def add_token(self, record: TokenRecord, *, audit: Any = None) -> None: ...  # ConfigurationError if taken
    # audit: a tasker_host.audit.AuditEntry appended with the token (revoke: only if it revokes)

    def token_by_digest(self, digest: str) -> TokenRecord | None: ...  # active or revoked

    def list_tokens(self) -> Sequence[TokenRecord]: ...  # oldest first, revoked included

    def revoke_token(self, id_or_name: str, now: float, *,
                     audit: Any = None) -> TokenRecord | None: ...  # None: unknown

    #: whether a revocation reaches running servers at once (through :meth:`listen`)
    @property
    def revocations_pushed(self) -> bool: ...

    def listen(self, on_revoked: Callable[[str], None], on_reset: Callable[[], None]) -> Any: ...
    # calls on_revoked(digest) for each later revocation, on_reset() when some may have been
    # missed; returns something to close() when done, or None when revocations are not pushed


def grants_from(texts: Iterable[str]) -> tuple[Grant, ...]:
    return tuple(Grant.parse(t) for t in texts)


def principal_doc(p: Principal) -> Mapping[str, object]:
    return {"name": p.name, "admin": p.admin, "grants": [str(g) for g in p.grants]}
