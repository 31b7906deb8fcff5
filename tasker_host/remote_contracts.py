"""Start-up check of declared calls into namespaces served by other hosts (``TASKER_REMOTE_HOSTS``):
each call is compared with the contract the remote host publishes at
``GET {url}/handlers/{namespace}/{name}?version=SPEC`` (input ``schema``, ``result_schema``).

A broken call is reported like a local one (a failure of the calling plugin, fatal under
``--strict``). A remote host that cannot be asked — unreachable, an error status, a token it
refuses — is a *warning*: the host still starts, and the call is checked again at the next start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from packaging.version import InvalidVersion, Version

from tasker_host.contracts.calls import CalleeContract, CallFinding, Severity, candidates, check_call
from tasker_host.models import DeclaredCall, TaskTemplate
from tasker_host.remote import error_message
from tasker_host.settings import RemoteHost

log = logging.getLogger("tasker_host.remote")

ClientFactory = Callable[[], httpx.Client]
NOT_THERE = frozenset({404, 410})  # the remote host says the target (or that version) does not exist


def default_client() -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0))


def check_remote_calls(templates: Iterable[TaskTemplate], remote_hosts: Sequence[RemoteHost],
                       client_factory: ClientFactory = default_client) -> list[CallFinding]:
    """Every declared call of ``templates`` into a namespace of ``remote_hosts``, checked against
    what that host publishes."""
    hosts = {h.namespace: h for h in remote_hosts}
    calls = [(t, s.name, c) for t in templates for s in t.steps for c in s.calls if c.namespace in hosts]
    if not calls:
        return []
    found: list[CallFinding] = []
    # one fetch per target and spec: the versions of a caller template often declare the same call
    # (and an unreachable host costs its connect timeout once, not once per call)
    published: dict[tuple[str, str, str | None], list[CalleeContract] | Refusal] = {}
    with client_factory() as client:
        for template, step, call in calls:
            key = (call.namespace, call.name, call.version)
            if key not in published:
                published[key] = _published(client, hosts[call.namespace], call)
            versions = published[key]
            if isinstance(versions, tuple):
                found.append(CallFinding(versions[0], template.full_name, step, call, versions[1],
                                         provenance=template.provenance))
            else:
                found += check_call(template, step, call, versions)
    for finding in found:
        log.log(logging.ERROR if finding.severity is Severity.BROKEN else logging.WARNING,
                "contract: %s", finding.describe())
    return found


Refusal = tuple[Severity, str]  # why the remote contract cannot be compared: broken, or a warning


def _published(client: httpx.Client, remote: RemoteHost, call: DeclaredCall) -> list[CalleeContract] | Refusal:
    """The remote versions ``call`` can resolve to, or why they cannot be compared."""
    first = _fetch(client, remote, call, call.version)
    if not isinstance(first, dict):
        return first
    try:
        available = [Version(v) for v in first.get("available_versions") or [first["version"]]]
    except (InvalidVersion, KeyError, TypeError):
        return Severity.WARNING, f"cannot check: host {remote.base_url} published an unreadable handler document"
    docs = {Version(first["version"]): first}
    wanted = candidates([CalleeContract("", v, None, None) for v in available], call.version)
    for v in (c.version for c in wanted if c.version not in docs):
        doc = _fetch(client, remote, call, str(v))
        if not isinstance(doc, dict):
            return doc
        docs[v] = doc
    return [_contract(docs[c.version]) for c in wanted if c.version in docs]


def _fetch(client: httpx.Client, remote: RemoteHost, call: DeclaredCall, spec: str | None) -> dict[str, Any] | Refusal:
    url = f"{remote.base_url}/handlers/{quote(call.namespace, safe='')}/{quote(call.name, safe='')}"
    try:
        response = client.get(url, params={"version": spec} if spec else None,
                              headers={"Authorization": f"Bearer {remote.token}", "Accept": "application/json"})
    except httpx.HTTPError as exc:
        return Severity.WARNING, f"cannot check: host {remote.base_url} is unreachable ({type(exc).__name__}: {exc})"
    if response.status_code in NOT_THERE:  # no such template or no version satisfies the spec
        return Severity.BROKEN, (f"host {remote.base_url} answered HTTP {response.status_code}: "
                                 f"{error_message(response)}")
    if response.status_code != 200:
        return Severity.WARNING, (f"cannot check: host {remote.base_url} answered HTTP {response.status_code}: "
                                  f"{error_message(response)}")
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
        return Severity.WARNING, f"cannot check: host {remote.base_url} published no handler document for {call.target}"
    return doc


def _contract(doc: dict[str, Any]) -> CalleeContract:
    return CalleeContract(str(doc.get("full_name") or doc["version"]), Version(doc["version"]),
                          doc.get("schema"), doc.get("result_schema"), tuple(doc.get("step_names") or ()),
                          bool(doc.get("deprecated") or doc.get("replaced_by") or doc.get("sunset")))
