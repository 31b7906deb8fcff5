"""The one error hierarchy of tasker-host.

::

    TaskerError
    ├── ConfigurationError            bad host settings or command-line input
    ├── PluginError                   a plugin could not be loaded or used
    │   └── PluginLoadFailures        strict mode: every plugin / template failure (and conflict) at once
    ├── TemplateError                 one or more problems in template documents (file, line, key)
    ├── RegistryError
    │   ├── ConflictError             ownership / duplicate conflicts; the host refuses to start
    │   └── ResolutionError           a ``namespace.name@spec`` request could not be resolved
    │       ├── UnknownNamespaceError
    │       ├── QuarantinedNamespaceError  plugins conflict over the namespace: it is not served
    │       ├── UnknownTemplateError
    │       ├── NoMatchingVersionError
    │       └── VersionSunsetError     the only matching version is past its sunset (410 in the API)
    ├── StoreUnavailableError         the database cannot be reached now (connection lost, server
    │                                 restarting, locked beyond its timeout): retried, 503 in the API
    ├── RequestError                  a request the service cannot accept (4xx in the API)
    │   ├── InvalidContextError       the task context violates the template's schema (all listed)
    │   ├── InvalidValueError         a value that cannot be stored (NUL, lone surrogate, 1e400 ...; all listed)
    │   ├── TaskNotFoundError
    │   ├── InvalidStateError         e.g. retrying a task that did not fail
    │   │   └── TaskEndedError        an event sent to a task that has ended (409 task_ended)
    │   ├── InvalidEventError         an event's payload violates the schema its step declared (all listed)
    │   └── InvocationDeniedError     a namespace may not invoke that template
    └── StepError                     raised by step handlers to classify a failure
        ├── PermanentError            never retried
        │   ├── ServiceRejected       (also a ServiceError) the service refused the request for good
        │   └── EventTimeoutError     the event a step waited for did not come in time (ctx.event)
        ├── RetryableError            retried with backoff (``retry_after`` seconds honoured)
        │   └── ServiceUnavailable    (also a ServiceError) unreachable, timed out, overloaded: retried
        └── ServiceError              a call to an outside service failed (unclassified: retried)

Every error carries a human-readable message; the ones that aggregate several problems keep
them in a list so callers (CLI ``--json``, REST API) can report all of them at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.models import Conflict, PluginFailure, TemplateProblem
    from tasker_host.values import ValueProblem


class TaskerError(Exception):
    """Base class of every error tasker-host raises on purpose."""


class ConfigurationError(TaskerError):
    """Host settings or command-line input that cannot be used."""


class PluginError(TaskerError):
    """A plugin could not be loaded or misbehaved."""


class PluginLoadFailures(PluginError):
    """Strict mode: plugins failed to load or have broken templates; every failure is listed,
    and so is every conflict the host would refuse to start with (``conflicts``), so one run
    reports everything to fix."""

    def __init__(self, failures: Sequence[PluginFailure], conflicts: Sequence[Conflict] = ()):
        self.failures = tuple(failures)
        self.conflicts = tuple(conflicts)
        head = f"{len(self.failures)} plugin failure(s)"
        if self.conflicts:
            head += f" and {len(self.conflicts)} conflict(s)"
        lines = [f"{head} (strict mode refuses to start):"]
        lines += [f"  - {f.describe()}" for f in self.failures]
        lines += [f"  - conflict {c.describe()}" for c in self.conflicts]
        super().__init__("\n".join(lines))


class TemplateError(TaskerError):
    """One or more problems in template documents, each with file, line and key path."""

    def __init__(self, problems: Sequence[TemplateProblem]):
        self.problems = tuple(problems)
        lines = [f"{len(self.problems)} template problem(s):"]
        lines += [f"  - {p.describe()}" for p in self.problems]
        super().__init__("\n".join(lines))


class RegistryError(TaskerError):
    """Base class of registry errors."""


class ConflictError(RegistryError):
    """Plugins disagree about who provides what; every provider is named."""

    def __init__(self, conflicts: Sequence[Conflict]):
        self.conflicts = tuple(conflicts)
        lines = [
            f"refusing to start: {len(self.conflicts)} plugin conflict(s) "
            "(use --on-conflict=quarantine to serve everything else):"
        ]
        lines += [f"  - {c.describe()}" for c in self.conflicts]
        super().__init__("\n".join(lines))


class ResolutionError(RegistryError):
    """A request for ``namespace.name@spec`` could not be satisfied."""

    def __init__(self, message: str, *, available: Sequence[str] = ()):
        self.available = tuple(available)
        super().__init__(message)


class UnknownNamespaceError(ResolutionError):
    """No plugin provides the requested namespace."""


class QuarantinedNamespaceError(ResolutionError):
    """The namespace is installed but quarantined (``--on-conflict quarantine``): more than one
    distribution claims it, so none of them is served. ``providers`` names every claimant."""

    def __init__(self, message: str, *, providers: Sequence[str] = ()):
        self.providers = tuple(providers)
        super().__init__(message)


class UnknownTemplateError(ResolutionError):
    """The namespace exists but has no template of that name."""


class NoMatchingVersionError(ResolutionError):
    """The template exists but no version satisfies the requested spec."""


class VersionSunsetError(ResolutionError):
    """The requested version reached its sunset day and refuses new tasks (its running tasks
    finish). ``replacement`` is the concrete version ``replaced_by`` resolves to, if installed."""

    def __init__(self, full_name: str, *, sunset: str, replaced_by: str | None = None,
                 replacement: str | None = None, replacement_version: str | None = None):
        self.full_name, self.sunset, self.replaced_by = full_name, sunset, replaced_by
        self.replacement, self.replacement_version = replacement, replacement_version
        if replacement:
            use = f"; use {replacement}" + (f" (replaced_by {replaced_by})" if replaced_by else "")
        elif replaced_by:
            use = f"; it is replaced by versions {replaced_by}, none of which is installed here"
        else:
            use = ""
        super().__init__(f"{full_name} reached its sunset on {sunset} and accepts no new tasks{use}",
                         available=[replacement_version] if replacement_version else [])

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.full_name, "sunset": self.sunset, "replaced_by": self.replaced_by,
                "replacement": self.replacement}


class StoreUnavailableError(TaskerError):
    """A connection-level database failure: the call may succeed if made again later.

    Raised by the SQL store in place of the driver's error (kept as ``__cause__``). Whether a
    write that failed this way was committed is unknown: the engine's own writes are safe to
    repeat (outcomes are checked against owner and attempt), a creation is safe to repeat with
    the same idempotency key."""


class RequestError(TaskerError):
    """A request the service cannot accept; nothing was written."""


class InvalidContextError(RequestError):
    """The task context violates the template's JSON Schema; every violation is listed."""

    def __init__(self, full_name: str, violations: Sequence[dict[str, Any]]):
        self.violations = tuple(violations)
        lines = [f"context for {full_name} is invalid ({len(self.violations)} problem(s)):"]
        lines += [f"  - {v['path']}: {v['message']}" for v in self.violations]
        super().__init__("\n".join(lines))


class InvalidValueError(RequestError):
    """A value (context, results) that cannot be stored; every problem is listed with its path
    (:mod:`tasker_host.values` holds the rule)."""

    def __init__(self, what: str, problems: Sequence[ValueProblem]):
        self.problems = tuple(problems)
        lines = [f"{what} cannot be stored ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p.describe()}" for p in self.problems]
        super().__init__("\n".join(lines))


class TaskNotFoundError(RequestError):
    """No task with that id (or not one the caller may see)."""


class AmbiguousTaskIdError(TaskNotFoundError):
    """A short task id that starts more than one task's id (``candidates`` lists some)."""

    def __init__(self, prefix: str, candidates: list[str]):
        self.candidates = candidates
        shown = ", ".join(candidates[:5])
        super().__init__(f"task id {prefix!r} is ambiguous: it starts {shown}"
                         f"{' and more' if len(candidates) > 5 else ''}; give more characters")


class InvalidStateError(RequestError):
    """The task or step is not in a state that allows the action."""


class TaskEndedError(InvalidStateError):
    """An event sent to a task that has ended (complete, cancelled, resolved): nothing can use it."""


class InvalidEventError(RequestError):
    """An event's payload violates the JSON Schema declared for it; every violation is listed."""

    def __init__(self, name: str, violations: Sequence[dict[str, Any]]):
        self.violations = tuple(violations)
        lines = [f"payload of event {name!r} is invalid ({len(self.violations)} problem(s)):"]
        lines += [f"  - {v['path']}: {v['message']}" for v in self.violations]
        super().__init__("\n".join(lines))


class InvocationDeniedError(RequestError):
    """Policy forbids the calling namespace to invoke the target template."""


class RemoteRequestError(TaskerError):
    """A tasker-host server refused a request of the CLI in remote mode (``--server``), or could not
    be reached (``status`` 0); ``code`` is the API's error code."""

    def __init__(self, message: str, *, status: int = 0, code: str = "unreachable"):
        self.status, self.code = status, code
        super().__init__(message)


class StepError(TaskerError):
    """Raised by a step handler to say how its failure must be treated."""


class PermanentError(StepError):
    """The step failed for good: it is not retried and its task ends in ``error``."""


class ResultContractViolation(PermanentError):
    """A step's results violate its template's ``result_schema`` (docs/contracts.md): the step
    fails for good and its task ends in ``error``. ``problems`` lists ``(json path, message)``."""

    def __init__(self, full_name: str, step: str, problems: Sequence[tuple[str, str]]):
        self.full_name, self.step, self.problems = full_name, step, tuple(problems)
        lines = [f"results of step {step!r} violate the result_schema of {full_name} "
                 f"({len(self.problems)} problem(s)):"]
        lines += [f"  - {path}: {message}" for path, message in self.problems]
        super().__init__("\n".join(lines))


class RetryableError(StepError):
    """The step failed for now: it is retried after ``retry_after`` seconds (or the backoff)."""

    def __init__(self, message: str = "", *, retry_after: float | None = None):
        if retry_after is not None and not 0 <= retry_after < float("inf"):  # (NaN fails both)
            raise ValueError("retry_after must be a finite number >= 0")
        self.retry_after = retry_after
        super().__init__(message)


class ServiceError(StepError):
    """A call to an outside service failed. Service clients raise one of the two subclasses, so
    that the engine retries or stops by type (never by message); a bare ``ServiceError`` is
    retried, like any unexpected exception."""


class ServiceUnavailable(ServiceError, RetryableError):
    """The service could not answer now (connection failed, timeout, overloaded, maintenance):
    the step is retried with backoff (or after ``retry_after`` seconds)."""


class ServiceRejected(ServiceError, PermanentError):
    """The service refused the request and asking again will not change that (authentication,
    authorization, unknown record, a declined card): the step fails for good."""


class EventTimeoutError(PermanentError):
    """The event a step waited for (``ctx.wait_for(name, timeout=...)``) did not arrive in time:
    raised by ``ctx.event(name)`` when the step runs again. Uncaught, it fails the step for good;
    a handler may catch it and decide (carry on with a default, wait again, fail its own way)."""

    def __init__(self, event: str, waited_since: float | None = None, timeout_at: float | None = None):
        self.event, self.waited_since, self.timeout_at = event, waited_since, timeout_at
        super().__init__(f"event {event!r} did not arrive before the wait timed out")
