"""The ``tasker-host`` command group and the options every command shares."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from tasker_host.cli.state import CliState
from tasker_host.errors import TaskerError
from tasker_host.registry import ConflictPolicy
from tasker_host.settings import HostSettings

__all__ = ["CliState", "build_cli", "main"]  # CliState lives in cli/state.py; re-exported for callers


LOCAL_ONLY = ("db", "tokens", "serve", "worker", "check", "drain-check")


def build_cli() -> click.Group:
    """Build the command group with every sub-command (no import-time registration)."""
    from tasker_host.cli import audit, catalog, contracts, database, events, kit, profiles, serve, tasks, tokens
    from tasker_host.cli import lifecycle as lifecycle_commands
    from tasker_host.cli.backend import local_only

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
                 invoke_without_command=True)
    @click.option("--strict/--no-strict", default=None, envvar="TASKER_STRICT_PLUGINS",
                  help="Treat any plugin load failure or broken template as fatal.  [env TASKER_STRICT_PLUGINS]")
    @click.option("--on-conflict", type=click.Choice([p.value for p in ConflictPolicy]), default=None,
                  envvar="TASKER_ON_CONFLICT",
                  help="What to do when plugins conflict: refuse to start (default), or quarantine the "
                       "conflicting entries and serve the rest.  [env TASKER_ON_CONFLICT]")
    @click.option("--database-url", default=None, envvar="TASKER_DATABASE_URL", metavar="URL",
                  help="sqlite:///path or postgresql://user@host/db (default: embedded SQLite).  "
                       "[env TASKER_DATABASE_URL]")
    @click.option("--server", default=None, envvar="TASKER_SERVER", metavar="URL",
                  help="Remote mode: a running host's API base URL (e.g. https://tasker.example.com/tasker); "
                       "task and catalogue commands go through its REST API.  [env TASKER_SERVER]")
    @click.option("--token", default=None, envvar="TASKER_TOKEN", metavar="TOKEN",
                  help="Remote mode: the API token (else the profile's).  [env TASKER_TOKEN]")
    @click.option("--profile", default=None, envvar="TASKER_PROFILE", metavar="NAME",
                  help="Remote mode: a profile stored by `tasker-host login`.  [env TASKER_PROFILE]")
    @click.version_option(package_name="tasker-host", prog_name="tasker-host")
    @click.pass_context
    def cli(ctx: click.Context, strict: bool | None, on_conflict: str | None, database_url: str | None,
            server: str | None, token: str | None, profile: str | None) -> None:
        """tasker-host: run many teams' workflows side by side, each team in its own namespace.

        Teams ship workflows as plugin packages (pip install tasker-payments ...). The host finds
        them through the "tasker_host.plugins" entry point group, refuses to start when two teams
        claim the same thing, and runs any version of any workflow.

        \b
        Start here:
          tasker-host plugins                       who provides what, failures, conflicts
          tasker-host handlers payments             the payments team's workflows
          tasker-host resolve payments.process_refund@~=2.1
          tasker-host validate path/to/templates/   check a team's YAML in its own CI
          tasker-host new-plugin shipping --namespace shipping   a new team's plugin project
          tasker-host check path/to/plugin          a plugin project's CI gate
          tasker-host versions payments.process_refund   each version's lifecycle and drain status
          tasker-host contracts diff OLD NEW        what a release breaks for its callers
          tasker-host tasks send ID approval --payload '{"approved": true, "approver": "maria"}'
          tasker-host audit --namespace payments    who did what, when

        \b
        Shell completion (bash; zsh_source / fish_source likewise):
          eval "$(_TASKER_HOST_COMPLETE=bash_source tasker-host)"
        """
        if ctx.invoked_subcommand is None:  # a bare `tasker-host`: the help, successfully
            click.echo(ctx.get_help())
            ctx.exit(0)
        state = ctx.ensure_object(CliState)
        overrides: dict[str, Any] = {"strict_plugins": strict, "database_url": database_url,
                     "on_conflict": ConflictPolicy(on_conflict) if on_conflict else None}
        # the environment (TASKER_*) unless a caller pre-set settings, then the command line
        try:
            base = HostSettings.from_env() if state.settings == HostSettings() else state.settings
        except TaskerError as exc:
            raise click.ClickException(str(exc)) from None
        state.settings = replace(base, **{k: v for k, v in overrides.items() if v is not None})
        if ctx.invoked_subcommand not in ("login", "logout"):
            try:
                state.remote = profiles.remote_target(server, token, profile)
            except TaskerError as exc:
                raise click.ClickException(str(exc)) from None

    for command in (*catalog.COMMANDS, *tasks.COMMANDS, *database.COMMANDS, *tokens.COMMANDS,
                    *serve.COMMANDS, *kit.COMMANDS, *profiles.COMMANDS, *lifecycle_commands.COMMANDS,
                    *contracts.COMMANDS, *audit.COMMANDS):
        cli.add_command(command)
    events.attach(tasks.tasks)  # tasks send
    for name in LOCAL_ONLY:  # they need the database: refuse remote mode
        local_only(cli.commands[name], name)
    return cli


def main() -> None:
    build_cli()(obj=CliState())
