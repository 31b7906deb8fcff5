"""The REST API (``tasker-host serve``): a thin Starlette layer over the host's service.

See :func:`tasker_host.api.app.create_app`; status codes and error bodies are listed in
:mod:`tasker_host.api.errors`.
"""

from tasker_host.api.app import create_app

__all__ = ["create_app"]
