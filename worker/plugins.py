"""Loading plugins from `plugin-dir` directories while the worker is still booting.

Importing happens before privileges are dropped, as lwsws loads its plugins: a
plugin that fails to import fails the generation, and the old one keeps serving.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

log = logging.getLogger("pyws.worker")


class PluginError(Exception):
    pass


def load_plugin_modules(plugin_dirs: tuple[str, ...]) -> list[ModuleType]:
    modules: list[ModuleType] = []
    for directory in plugin_dirs:
        for path in sorted(Path(directory).glob("*.py")):
            modules.append(_import(path))
    return modules


def _import(path: Path) -> ModuleType:
    name = f"pyws_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: not an importable module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise PluginError(f"{path}: {type(exc).__name__}: {exc}") from exc
    log.info("loaded plugin module %s", path)
    return module
