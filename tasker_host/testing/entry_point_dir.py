"""A plugin made discoverable to other processes without ``pip install``: a ``*.dist-info``
folder with the entry point, beside the plugin's module, in a directory put on ``PYTHONPATH``.

::

    site = write_plugin_dist(tmp_path, "tasker-probe", "0.1.0", "probe", "tasker_probe:plugin",
                             module_source={"tasker_probe.py": SOURCE})
    subprocess.Popen(["tasker-host", "worker"], env={**os.environ, "PYTHONPATH": str(site)})

Real ``importlib.metadata`` discovery reads it, as it would an installed distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tasker_host.plugins import ENTRY_POINT_GROUP


def write_plugin_dist(site: Path, dist: str, version: str, entry_name: str, target: str,
                      module_source: Mapping[str, str] | None = None) -> Path:
    """Write ``module_source`` (file name -> text) and a dist-info for ``dist`` whose entry point
    ``entry_name = target`` is in the host's group, into ``site``; returns ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for name, text in (module_source or {}).items():
        (site / name).write_text(text)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_name} = {target}\n")
    return site
