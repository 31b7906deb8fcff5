"""pluggy markers for the ``tasker_host`` project (kept apart so importing them loads nothing)."""

import pluggy

PROJECT_NAME = "tasker_host"
ENTRY_POINT_GROUP = "tasker_host.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
