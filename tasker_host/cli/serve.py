"""``tasker-host serve``: the REST API (and, unless --no-worker, the engine) in one process."""

from __future__ import annotations

import gc

import click

from tasker_host.cli.engine_options import engine_options, with_engine_options
from tasker_host.cli.output import fail
from tasker_host.cli.state import CliState, pass_state
from tasker_host.errors import TaskerError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@click.command()
@click.option("--host", "bind_host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--prefix", default="/tasker", show_default=True, help="URL prefix of every endpoint.")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run the engine here (--no-worker: only serve; run `tasker-host worker` elsewhere).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True,
              help="One JSON object per line, or key=value text.")
@click.option("--max-body-bytes", default=1_048_576, show_default=True, type=click.IntRange(1),
              help="Larger request bodies get 413.")
@click.option("--shutdown-timeout", default=30.0, show_default=True, type=click.FloatRange(0),
              help="Seconds to let open requests finish after SIGTERM / Ctrl-C.")
@click.option("--grace-seconds", default=30.0, show_default=True, type=click.FloatRange(0),
              help="At shutdown, how long running steps may take to finish before they are released.")
@click.option("--token-cache-seconds", default=5.0, show_default=True, type=click.FloatRange(0),
              help="Remember accepted tokens this long; 0: check every request. A revocation takes effect "
                   "at once on PostgreSQL (servers are notified), within this time on SQLite.")
@engine_options
@pass_state
def serve(state: CliState, bind_host: str, port: int, prefix: str, worker: bool, log_level: str, log_format: str,
          max_body_bytes: int, shutdown_timeout: float, grace_seconds: float, token_cache_seconds: float,
          concurrency: int | None, lease_seconds: float | None, heartbeat_seconds: float | None,
          poll_seconds: float | None, namespace_limits: tuple[str, ...]) -> None:
    """Serve the REST API: tasks, the handler catalogue, health, metrics and OpenAPI.

    \b
    Every endpoint but /health/* and /openapi.json needs 'Authorization: Bearer <token>'
    (issue tokens with `tasker-host tokens`). The database comes from the global
    --database-url / TASKER_DATABASE_URL. SIGTERM or Ctrl-C stops gracefully: open requests
    finish, the engine releases running steps and commits, then the store closes.

    \b
    Examples:
      tasker-host serve --port 8080
      TASKER_DATABASE_URL=postgresql://tasker@db/tasker tasker-host serve --host 0.0.0.0 --no-worker
    """
    import uvicorn

    from tasker_host.api.access_log import configure_logging
    from tasker_host.api.app import create_app
    from tasker_host.host import build_host
    from tasker_host.trace_setup import shutdown, tracer_provider_from_env

    state.settings = with_engine_options(state.settings, concurrency, lease_seconds, poll_seconds,
                                         namespace_limits, heartbeat_seconds)
    configure_logging(log_level, log_format)
    try:
        provider = tracer_provider_from_env()  # the [otel] extra, when OTEL_* variables ask for traces
        host = build_host(state.settings, entry_points=state.entry_points, tracer_provider=provider)
        app = create_app(host, prefix=prefix, run_worker=worker, max_body_bytes=max_body_bytes,
                         token_cache_seconds=token_cache_seconds, grace_seconds=grace_seconds)
    except TaskerError as exc:
        fail(exc)
        return
    config = uvicorn.Config(app, host=bind_host, port=port, log_config=None, log_level=log_level,
                            access_log=False, lifespan="on", timeout_graceful_shutdown=shutdown_timeout,  # type: ignore[arg-type]  # uvicorn waits any number of seconds; it annotates int
                            server_header=False)
    server = uvicorn.Server(config)
    # Everything built so far (plugins, registry, templates) lives as long as the process: keep
    # it out of the cyclic collector's full passes, which would otherwise stall requests.
    gc.collect()
    gc.freeze()
    server.run()  # installs SIGINT / SIGTERM handlers; returns after a graceful shutdown
    shutdown(provider)  # exports the spans still buffered
    if not server.started:
        raise SystemExit(1)


COMMANDS = (serve,)
