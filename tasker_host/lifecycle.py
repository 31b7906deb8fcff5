"""Version lifecycle of ``namespace.name@version``: the template fields ``deprecated``,
``replaced_by`` and ``sunset``, and the rules resolution follows with them. Pure (no I/O); the
day is always passed in (the host clock's, so tests use the fake clock).

Rules (``Registry.resolve``):

* a version whose sunset day has come (``today >= sunset``, UTC) is never chosen for a new task;
  a request that only such a version satisfies raises :class:`VersionSunsetError` naming the
  replacement (``replaced_by`` resolved to a concrete version when one is installed);
* an omitted version never resolves to a deprecated version while a non-deprecated one exists;
* an exact version or a range may still resolve to a deprecated version: the task then carries
  a warning (:func:`deprecation_warning`), emitted as a ``task.deprecated_version`` event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from packaging.version import Version

from tasker_host.errors import ConfigurationError, VersionSunsetError
from tasker_host.models import TaskTemplate
from tasker_host.versions import VersionRequest
from tasker_host.yaml_nodes import Document

_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DEPRECATED_WARNING = "deprecated_version"  # the ``code`` of the warning recorded on a task


# --- template documents ---------------------------------------------------------------------------
def normalize(data: dict[str, Any]) -> None:
    """A ``sunset`` given as a ``date`` (a parsed mapping from a plugin) becomes its ISO text,
    as YAML documents carry it, so the document stays JSON data."""
    value = data.get("sunset")
    if isinstance(value, (date, datetime)):
        data["sunset"] = value.isoformat()


def check(doc: Document, data: dict[str, Any], version: Version | None) -> None:
    """``replaced_by`` must be a version request that does not include this version itself;
    ``sunset`` a real calendar day written ``YYYY-MM-DD``."""
    spec = data.get("replaced_by")
    if isinstance(spec, str) and spec.strip():
        try:
            request = VersionRequest.parse(spec)
        except ConfigurationError:
            doc.add(f"replaced_by {spec!r} is not a version request: use an exact version (3.1.0) "
                    "or a PEP 440 range (~=3.0, >=3,<4)", "replaced_by")
        else:
            if version is not None and request.select([version]) is not None:
                doc.add(f"replaced_by {spec!r} includes this version ({version}) itself", "replaced_by")
    sunset = data.get("sunset")
    if isinstance(sunset, str) and parse_sunset(sunset) is None:
        doc.add(f"sunset must be a date written YYYY-MM-DD (e.g. 2027-03-01), found {sunset!r}", "sunset")


def parse_sunset(text: Any) -> date | None:
    """The day of a ``sunset`` value, or None when it is not one."""
    if isinstance(text, date) and not isinstance(text, datetime):
        return text
    if not isinstance(text, str) or not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def day_of(now: float) -> date:
    """The UTC calendar day of an epoch time (the host clock's ``now()``)."""
    return datetime.fromtimestamp(now, tz=UTC).date()


# --- resolution -----------------------------------------------------------------------------------
def choose(request: VersionRequest, versions: Sequence[TaskTemplate], today: date | None) -> TaskTemplate | None:
    """The version a new task of ``request`` runs on (see the module rules); None when nothing
    matches. ``today`` None: sunsets are not applied (catalogue lookups)."""
    usable = [t for t in versions if today is None or not t.sunset_reached(today)]
    if request.text is None:
        current = [t for t in usable if not t.is_deprecated]
        return _pick(request, current) or _pick(request, usable)
    return _pick(request, usable)


def sunset_error(request: VersionRequest, versions: Sequence[TaskTemplate], today: date,
                 resolve: Callable[[str], TaskTemplate | None]) -> VersionSunsetError | None:
    """When only versions past their sunset satisfy ``request``: the error naming the highest of
    them and its replacement (``resolve(replaced_by)``, None when not installed)."""
    gone = _pick(request, [t for t in versions if t.sunset_reached(today)])
    if gone is None:
        return None
    replacement = resolve(gone.replaced_by) if gone.replaced_by else None
    return VersionSunsetError(gone.full_name, sunset=gone.sunset.isoformat() if gone.sunset else "",
                              replaced_by=gone.replaced_by,
                              replacement=replacement.full_name if replacement else None,
                              replacement_version=str(replacement.version) if replacement else None)


def _pick(request: VersionRequest, templates: Sequence[TaskTemplate]) -> TaskTemplate | None:
    chosen = request.select(t.version for t in templates)
    return next((t for t in templates if t.version == chosen), None) if chosen is not None else None


# --- warnings -------------------------------------------------------------------------------------
def deprecation_warning(t: TaskTemplate, replacement: TaskTemplate | None) -> dict[str, Any]:
    """The warning recorded on a task that runs on a deprecated version (JSON data)."""
    message = f"{t.full_name} is deprecated"
    if t.deprecated and t.deprecated != "deprecated":
        message += f": {t.deprecated}"
    if t.sunset is not None:
        message += f"; it refuses new tasks from {t.sunset.isoformat()}"
    if replacement is not None:
        message += f"; use {replacement.full_name}"
    return {"code": DEPRECATED_WARNING, "message": message, "replaced_by": t.replaced_by,
            "replacement": replacement.full_name if replacement else None,
            "sunset": t.sunset.isoformat() if t.sunset else None}
