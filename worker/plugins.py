"""Finding plugins and making one instance per vhost that names each, while the worker boots.

Plugins come built in, from `plugin-dir` modules and from the `pyws.plugins` entry points.

Importing and initialising happen before privileges are dropped, as lwsws loads its plugins:
a plugin that fails to import or init fails the generation, and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from pyws.supervisor.config.model import (
    Config,
    MountConfig,
    OriginKind,
    ProtocolConfig,
    VhostConfig,
)
from pyws.worker.auth import Credentials
from pyws.worker.cgi.headers import CGIHead, head_fields
from pyws.worker.exchange import Exchange, StreamHandler
from pyws.worker.http.events import Request
from pyws.worker.plugin_api import (
    HTTPExchange,
    Plugin,
    PluginContext,
    PluginError,
    WorkerInfo,
)
from pyws.worker.routing import Route
from pyws.worker.world import World
from pyws.worker.ws.handshake import OfferedProtocol, VhostOffer, gate_for

log = logging.getLogger("pyws.worker")

ENTRY_POINT_GROUP = "pyws.plugins"

__all__ = ["ENTRY_POINT_GROUP", "CallbackMount", "PluginError", "PluginSet", "discover_plugins"]


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


def plugin_classes(module: ModuleType) -> list[type[Plugin]]:
    """The Plugin subclasses a module defines (not those it imports), with a name."""
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Plugin)
        and obj.__module__ == module.__name__
        and obj.name
    ]


def discover_plugins(plugin_dirs: tuple[str, ...]) -> dict[str, type[Plugin]]:
    """Every plugin class by protocol name: built in, then `plugin-dir` modules, then the
    `pyws.plugins` entry points. Either may replace a built-in plugin; two others of one
    name are a PluginError, as is any import failure."""
    from pyws.worker.builtin_plugins import BUILTIN

    found: dict[str, type[Plugin]] = {cls.name: cls for cls in BUILTIN}
    builtin = set(found)
    for module in load_plugin_modules(plugin_dirs):
        _add(found, builtin, plugin_classes(module), str(module.__file__))
    for point in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {point.name} = {point.value}"
        try:
            obj = point.load()
        except Exception as exc:
            raise PluginError(f"{source}: {type(exc).__name__}: {exc}") from exc
        if isinstance(obj, ModuleType):
            classes = plugin_classes(obj)
        elif isinstance(obj, type) and issubclass(obj, Plugin) and obj.name:
            classes = [obj]
        else:
            raise PluginError(f"{source}: neither a module nor a named Plugin subclass")
        _add(found, builtin, classes, source)
    return found


def _add(
    found: dict[str, type[Plugin]], builtin: set[str], classes: list[type[Plugin]], source: str
) -> None:
    for cls in classes:
        if cls.name in found and found[cls.name] is not cls:
            if cls.name not in builtin:
                raise PluginError(f"{source}: a plugin named {cls.name!r} is already loaded")
            log.info("%s replaces the built-in plugin %s", source, cls.name)
            builtin.discard(cls.name)
        found[cls.name] = cls


class PluginSet:
    """The plugin instances of one worker, one per (vhost, plugin name), and what each vhost
    offers to WebSocket upgrades.

    Order of calls: build at boot, as root (reads pvo basic-auth files; PluginError or OSError
    fail the boot); `offer(vhost)` / `callback_origin(vhost, mount)` while wiring the server;
    `start(loop)` once serving; `stop()` at exit.
    """

    def __init__(
        self,
        config: Config,
        world: World,
        worker: WorkerInfo,
        classes: Mapping[str, type[Plugin]] | None = None,
    ) -> None:
        self._classes = (
            classes if classes is not None else discover_plugins(config.global_.plugin_dirs)
        )
        self._world = world
        self._worker = worker
        self._instances: dict[tuple[int, str], Plugin] = {}
        self._offers: dict[int, VhostOffer] = {}
        loaded: dict[str, Credentials] = {}
        for vhost in config.vhosts:
            offered = []
            for protocol in _unique(vhost.ws_protocols, vhost):
                plugin = self._instance(vhost, protocol)
                credentials, challenge = gate_for(protocol, vhost, loaded)
                offered.append(OfferedProtocol(protocol, plugin, credentials, challenge))
            self._offers[id(vhost)] = VhostOffer(vhost, offered)
            for mount in vhost.mounts:
                if mount.kind is OriginKind.CALLBACK:
                    own = next((p for p in vhost.ws_protocols if p.name == mount.target), None)
                    self._instance(vhost, own or ProtocolConfig(mount.target))

    @property
    def plugins(self) -> list[Plugin]:
        return list(self._instances.values())

    def offer(self, vhost: VhostConfig) -> VhostOffer:
        return self._offers[id(vhost)]

    def plugin(self, vhost: VhostConfig, name: str) -> Plugin:
        return self._instances[(id(vhost), name)]

    def callback_origin(self, vhost: VhostConfig, mount: MountConfig) -> CallbackMount:
        return CallbackMount(self.plugin(vhost, mount.target), mount)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        for plugin in self._instances.values():
            plugin.start(loop)

    def stop(self) -> None:
        for plugin in self._instances.values():
            try:
                plugin.stop()
            except Exception:  # exiting anyway: every plugin gets its stop()
                log.exception("plugin %s failed in stop()", plugin.name)

    def _instance(self, vhost: VhostConfig, protocol: ProtocolConfig) -> Plugin:
        key = (id(vhost), protocol.name)
        found = self._instances.get(key)
        if found is not None:
            return found
        cls = self._classes.get(protocol.name)
        if cls is None:
            known = ", ".join(sorted(self._classes)) or "none"
            raise PluginError(
                f"vhost {vhost.name}: no plugin provides protocol {protocol.name!r} "
                f"(loaded: {known})"
            )
        context = PluginContext(vhost, protocol, self._world, self._worker)
        try:
            plugin = cls(context)
        except PluginError as exc:
            raise PluginError(f"vhost {vhost.name}: {protocol.name}: {exc}") from exc
        except Exception as exc:
            raise PluginError(
                f"vhost {vhost.name}: {protocol.name}: init failed: {type(exc).__name__}: {exc}"
            ) from exc
        self._instances[key] = plugin
        return plugin


def _unique(protocols: Iterable[ProtocolConfig], vhost: VhostConfig) -> list[ProtocolConfig]:
    seen: dict[str, ProtocolConfig] = {}
    for protocol in protocols:
        if protocol.name in seen:
            log.warning(
                "vhost %s: protocol %s listed twice: the first counts", vhost.name, protocol.name
            )
            continue
        seen[protocol.name] = protocol
    return list(seen.values())


class CallbackMount:
    """The streaming origin of a `callback://` mount: each request goes to its plugin."""

    def __init__(self, plugin: Plugin, mount: MountConfig) -> None:
        self.plugin = plugin
        self.mount = mount

    def open(self, request: Request, route: Route, exchange: Exchange) -> StreamHandler:
        handler = _CallbackHandler(self.plugin, exchange)
        handler.http = HTTPExchange(request, self.mount, route.remainder, handler)
        handler.call(self.plugin.http_request)
        return handler


class _CallbackHandler:
    """One callback request: content goes to the plugin, its response to the Exchange."""

    http: HTTPExchange

    def __init__(self, plugin: Plugin, exchange: Exchange) -> None:
        self.plugin = plugin
        self.exchange = exchange
        self.done = False

    def call(self, callback: Callable[..., None], *args: bytes) -> None:
        if self.done:
            return
        try:
            callback(self.http, *args)
        except Exception:  # the per-request boundary: a plugin bug answers 500 here only
            log.exception("plugin %s failed on %s", self.plugin.name, self.http.path)
            self.exchange.fail(500)
            self._finish()

    # StreamHandler: what the HTTP connection calls --------------------------------------------

    def feed_body(self, data: bytes) -> None:
        self.call(self.plugin.http_body, data)

    def end_body(self) -> None:
        self.call(self.plugin.http_body_complete)

    def pause_output(self) -> None:
        pass  # responses are written whole: the transport's buffer holds one at most

    def resume_output(self) -> None:
        pass

    def client_gone(self) -> None:
        self._finish()

    # ResponseSink: what the HTTPExchange calls --------------------------------------------------

    def head(
        self, status: int, headers: tuple[tuple[bytes, bytes], ...], length: int | None
    ) -> None:
        self.exchange.send_head(CGIHead(status, b"", headers, length, head_fields(headers)))

    def body(self, data: bytes) -> None:
        self.exchange.send_body(data)

    def end(self) -> None:
        self.exchange.end()
        self._finish()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.exchange.finished()
