"""Remote-mode profiles: ``tasker-host login URL`` stores a server and its API token under a profile
name in the user's config dir (``click.get_app_dir("tasker-host")``, XDG on Linux), file mode 0600 in a
0700 directory; ``logout`` forgets one. :func:`remote_target` picks the server and token a command
uses: ``--token`` > ``TASKER_TOKEN`` > the profile (``--profile`` / ``TASKER_PROFILE``, else the one
stored for that server, else ``default``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tasker_host.cli.output import emit, json_option
from tasker_host.errors import ConfigurationError

DEFAULT_PROFILE = "default"
FILE_NAME = "profiles.json"


@dataclass(frozen=True)
class RemoteTarget:
    """Where remote mode sends its requests (the API base URL, prefix included) and with what token."""

    server: str
    token: str
    profile: str | None = None


def config_dir() -> Path:
    return Path(click.get_app_dir("tasker-host"))


def profiles_path() -> Path:
    return config_dir() / FILE_NAME


def load_profiles() -> dict[str, dict[str, str]]:
    path = profiles_path()
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the profiles file {path}: {exc}") from None
    profiles = doc.get("profiles") if isinstance(doc, dict) else None
    if not isinstance(profiles, dict):
        raise ConfigurationError(f"the profiles file {path} has no 'profiles' object")
    return profiles


def save_profiles(profiles: dict[str, dict[str, str]]) -> Path:
    """Write the file 0600 (created so: the token is never readable by others, not even briefly)."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / FILE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"profiles": profiles}, out, indent=2)
    return path


def remote_target(server: str | None, token: str | None, profile: str | None) -> RemoteTarget | None:
    """The target of remote mode, or None for local mode (neither a server nor a profile chosen).
    ``token`` is ``--token`` or ``TASKER_TOKEN`` (click reads the variable)."""
    if server is None and profile is None:
        return None
    profiles = load_profiles()
    chosen = _choose(profiles, server, profile)
    stored = profiles.get(chosen, {}) if chosen else {}
    url = server or stored.get("server")
    if not url:
        raise ConfigurationError(f"no profile {profile!r} (tasker-host login URL --profile {profile})")
    secret = token or stored.get("token")
    if not secret:
        raise ConfigurationError(f"no API token for {url}: pass --token, set TASKER_TOKEN, "
                                 f"or run `tasker-host login {url}`")
    return RemoteTarget(url.rstrip("/"), secret, chosen)


def _choose(profiles: dict[str, dict[str, str]], server: str | None, profile: str | None) -> str | None:
    if profile is not None:
        return profile
    same = [name for name, p in profiles.items() if server and p.get("server", "").rstrip("/") == server.rstrip("/")]
    if DEFAULT_PROFILE in same or not same:
        return DEFAULT_PROFILE if DEFAULT_PROFILE in same else None
    return same[0]


@click.command()
@click.argument("server", metavar="URL")
@click.option("--token", help="The API token (prompted for, hidden, when omitted).")
@click.option("--profile", "name", default=DEFAULT_PROFILE, show_default=True, help="Store it under this name.")
@json_option
def login(server: str, token: str | None, name: str, as_json: bool) -> None:
    """Remember a server (its API base URL, e.g. https://tasker.example.com/tasker) and an API token,
    so commands with --server URL or --profile NAME need no --token. The token is stored in the
    user's config dir, readable only by the user (mode 0600)."""
    secret = token or click.prompt("API token", hide_input=True)
    profiles = _loaded()
    profiles[name] = {"server": server.rstrip("/"), "token": secret}
    path = save_profiles(profiles)
    emit({"profile": name, "server": server.rstrip("/"), "file": str(path)}, as_json,
         lambda d: f"profile {d['profile']}: {d['server']} (stored in {d['file']})")


@click.command()
@click.option("--profile", "name", default=DEFAULT_PROFILE, show_default=True, help="The profile to forget.")
@json_option
def logout(name: str, as_json: bool) -> None:
    """Forget a stored profile (its server and token)."""
    profiles = _loaded()
    known = profiles.pop(name, None) is not None
    if known:
        save_profiles(profiles)
    emit({"profile": name, "removed": known}, as_json,
         lambda d: f"profile {d['profile']} " + ("removed" if d["removed"] else "was not stored"))


def _loaded() -> dict[str, Any]:
    try:
        return load_profiles()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS = (login, logout)
