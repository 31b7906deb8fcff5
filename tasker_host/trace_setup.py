"""The OpenTelemetry SDK for ``serve`` and ``worker``, set up from the standard ``OTEL_*``
environment variables when the ``tasker-host[otel]`` extra is installed (docs/observability.md).

The rule (:func:`wants_traces`): traces are exported when ``OTEL_SDK_DISABLED`` is not ``true``
and either ``OTEL_TRACES_EXPORTER`` names exporters (``otlp``, ``console``; ``none``: off) or an
OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
which imply ``otlp``). Nothing set: no SDK, no-op spans (an installed SDK alone never starts
exporting to a default endpoint). The rest is the SDK's own reading of the standard variables:
``OTEL_SERVICE_NAME`` (default here: ``tasker-host``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER[_ARG]``, ``OTEL_BSP_*``, the exporter's endpoint, headers, timeout and
``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` (``http/protobuf`` by default, or ``grpc``).

The provider is returned, never installed as the global one: ``build_host`` hands it to the
engine, the service and the API.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from tasker_host.errors import ConfigurationError

log = logging.getLogger("tasker_host.tracing")

EXPORTERS = ("otlp", "console")
DEFAULT_SERVICE_NAME = "tasker-host"


def exporters_wanted(env: Mapping[str, str]) -> list[str]:
    """The trace exporters the environment asks for (empty: no traces)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if named:
        unknown = sorted(set(named) - {*EXPORTERS, "none"})
        if unknown:
            raise ConfigurationError(f"OTEL_TRACES_EXPORTER: unknown exporter(s) {', '.join(unknown)} "
                                     f"(this host knows {', '.join(EXPORTERS)} and none)")
        return [] if "none" in named else named
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return ["otlp"]
    return []


def wants_traces(env: Mapping[str, str]) -> bool:
    return bool(exporters_wanted(env))


def tracer_provider_from_env(env: Mapping[str, str] | None = None) -> Any:
    """An SDK ``TracerProvider`` exporting as the environment says, or None (no traces asked
    for). Traces asked for without the SDK installed: a warning, and None."""
    env = os.environ if env is None else env
    wanted = exporters_wanted(env)
    if not wanted:
        return None
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("traces are asked for (OTEL_* variables) but the OpenTelemetry SDK is not installed: "
                    "pip install 'tasker-host[otel]'; running without traces")
        return None
    service = {SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(service))  # + OTEL_RESOURCE_ATTRIBUTES
    for name in wanted:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, env)))
    log.info("exporting traces: %s", ", ".join(wanted))
    return provider


def _exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        elif protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
        else:
            raise ConfigurationError(f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported "
                                     "(http/protobuf or grpc)")
    except ImportError as exc:
        raise ConfigurationError(f"the OTLP exporter is not installed ({exc}): "
                                 "pip install 'tasker-host[otel]'") from None
    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: from the OTEL_* variables


def shutdown(provider: Any) -> None:
    """Flush and stop the provider's exporters (at the end of ``serve`` / ``worker``)."""
    if provider is not None:
        provider.shutdown()
