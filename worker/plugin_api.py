"""The plugin API: a `Plugin` class per protocol, and what pyws hands its instances.

A plugin is a subclass of `Plugin` with a class attribute `name` (the protocol name vhosts use
in `ws-protocols` and `callback://` origins). pyws finds them in `plugin-dir` modules and in the
`pyws.plugins` entry point group (see worker/plugins.py), and calls them in this order:

1. At boot, as root, before the privilege drop: `Plugin(context)` once per vhost that names the
   plugin (in `ws-protocols`, or as a `callback://` mount's origin). `context.options` are the
   pvo pairs. Read files, check options here; raising fails the generation's boot and the
   old generation keeps serving.
2. In the event loop, once the worker serves: `start(loop)`. Timers start here.
3. Per WebSocket: `established(ws)`, then any number of `message(ws, text_or_bytes)` and
   `writable(ws)` (after `ws.request_writable()`), then `closed(ws, code)` exactly once.
   `ws.request` is readable in `established` only (lws frees the header data there too).
4. Per request to a `callback://` mount: `http_request(exchange)`, `http_body(exchange, chunk)`
   for each piece of content, `http_body_complete(exchange)`. The plugin answers with
   `exchange.respond()` (or `send_head`/`send_body`/`end`) from any of them, or later.
5. When the worker exits: `stop()`.

Every callback runs in the worker's event loop and must not block. An exception in a callback
closes that connection only (WebSocket 1011, HTTP 500) and is logged with its traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pyws.supervisor.config.model import MountConfig, ProtocolConfig, VhostConfig
from pyws.worker.http.events import Request
from pyws.worker.http.response import serialize_fields

if TYPE_CHECKING:
    from pyws.worker.world import World

_TRUE = frozenset({"1", "on", "yes", "true"})
_FALSE = frozenset({"0", "off", "no", "false", ""})


class PluginError(Exception):
    """A plugin cannot be imported or initialised: the worker cannot boot."""


class WorkerInfo:
    """The worker a plugin runs in. `connections` is set by the server once it exists."""

    __slots__ = ("connections", "generation", "root_pid")

    def __init__(self, generation: int, root_pid: int) -> None:
        self.generation = generation
        self.root_pid = root_pid
        self.connections: Callable[[], int] = lambda: 0  # this worker's open connections


class PluginContext:
    """What a plugin instance gets at init: its vhost, its pvo options and the shared world."""

    __slots__ = ("protocol", "vhost", "worker", "world")

    def __init__(
        self, vhost: VhostConfig, protocol: ProtocolConfig, world: World, worker: WorkerInfo
    ) -> None:
        self.vhost = vhost
        self.protocol = protocol
        self.world = world  # shared by the workers of this generation only
        self.worker = worker

    @property
    def options(self) -> tuple[tuple[str, str], ...]:
        """Every pvo pair, in order (a key may repeat)."""
        return self.protocol.options

    def option(self, key: str, fallback: str | None = None) -> str | None:
        return self.protocol.option(key, fallback)

    def flag(self, key: str, fallback: bool = False) -> bool:
        """A boolean pvo (1/0, on/off, yes/no, true/false); PluginError otherwise."""
        value = self.protocol.option(key)
        if value is None:
            return fallback
        text = value.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise PluginError(f"{self.protocol.name}: {key}: expected a boolean, found {value!r}")

    def number(self, key: str, fallback: int) -> int:
        """A whole-number pvo; PluginError otherwise."""
        value = self.protocol.option(key)
        if value is None:
            return fallback
        try:
            return int(value.strip())
        except ValueError:
            raise PluginError(
                f"{self.protocol.name}: {key}: expected a whole number, found {value!r}"
            ) from None


class WebSocket(Protocol):
    """One WebSocket connection, as its plugin sees it (pyws's WSProtocol implements it)."""

    path: str  # the request path, percent-decoding left to the plugin
    query: str  # the query string without "?", as sent
    subprotocol: str | None  # what was agreed; None when the client named none
    session: Any  # the plugin's own per-connection state (lws's "pss"); starts as None

    @property
    def request(self) -> Request | None:
        """The upgrade request head: set during `established()` only."""

    def query_param(self, name: str) -> str | None:
        """The first value of a query parameter, percent-decoded."""

    def send(self, message: str | bytes) -> None:
        """Queue one whole message: text for str, binary for bytes. Dropped once closing;
        a peer that reads too slowly is closed with 1008 rather than queued for without end."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; `closed()` follows when the connection is gone."""

    def request_writable(self) -> None:
        """Ask for one `writable(ws)` call when the peer can take more (lws's
        `lws_callback_on_writable`)."""

    @property
    def buffered(self) -> int:
        """Bytes queued for the peer and not yet sent."""


class ResponseSink(Protocol):
    """Where an HTTPExchange's response goes (the HTTP connection implements it)."""

    def head(
        self, status: int, headers: tuple[tuple[bytes, bytes], ...], length: int | None
    ) -> None: ...
    def body(self, data: bytes) -> None: ...
    def end(self) -> None: ...


class HTTPExchange:
    """One request to a `callback://` mount, as its plugin sees it."""

    __slots__ = ("_length", "_sent", "_sink", "mount", "path", "pmo", "request", "session")

    def __init__(self, request: Request, mount: MountConfig, path: str, sink: ResponseSink) -> None:
        self.request = request
        self.mount = mount
        self.pmo = dict(mount.pmo)  # the mount's per-mount options
        self.path = path  # below the mountpoint, without a leading "/"
        self.session: Any = None  # the plugin's own per-request state
        self._sink = sink
        self._sent = 0  # 0: nothing yet, 1: head sent, 2: complete
        self._length: int | None = None

    @property
    def query(self) -> str:
        return self.request.target.partition(b"?")[2].decode("latin-1")

    @property
    def responded(self) -> bool:
        """The response head is out: a second one would be a bug."""
        return self._sent > 0

    @property
    def complete(self) -> bool:
        return self._sent == 2

    def header(self, name: str) -> str | None:
        value = self.request.header(name.lower().encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    def respond(
        self, status: int, headers: Sequence[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        """Send a whole response; Content-Length is added."""
        self.send_head(status, headers, len(body))
        if body:
            self.send_body(body)
        self.end()

    def send_head(
        self, status: int, headers: Sequence[tuple[str, str]] = (), length: int | None = None
    ) -> None:
        """Start a response; without `length` the body is sent chunked. ValueError for a
        header that is unsafe to send; RuntimeError when a head was already sent."""
        if self._sent:
            raise RuntimeError("the response head was already sent")
        fields = [(n, v.strip()) for n, v in headers if n.lower() != "content-length"]
        serialize_fields(fields)  # raises ValueError for what must not be sent
        encoded = tuple((n.encode("latin-1"), v.encode("latin-1")) for n, v in fields)
        self._sink.head(status, encoded, length)
        self._sent = 1
        self._length = length

    def send_body(self, data: bytes) -> None:
        if self._sent != 1:
            raise RuntimeError("send_body() outside a response")
        self._sink.body(data)

    def end(self) -> None:
        if self._sent != 1:
            raise RuntimeError("end() outside a response")
        self._sent = 2
        self._sink.end()


class Plugin:
    """Subclass, set `name`, override the callbacks you need (the defaults do nothing).

    Instances are per vhost; `self.context` and (from `start()` on) `self.loop` are set.
    """

    name: ClassVar[str] = ""
    loop: asyncio.AbstractEventLoop

    def __init__(self, context: PluginContext) -> None:
        self.context = context

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def stop(self) -> None:
        pass

    # WebSocket ------------------------------------------------------------------------------

    def established(self, ws: WebSocket) -> None:
        pass

    def message(self, ws: WebSocket, message: str | bytes) -> None:
        pass

    def writable(self, ws: WebSocket) -> None:
        pass

    def closed(self, ws: WebSocket, code: int) -> None:
        pass

    # HTTP (callback:// mounts) ----------------------------------------------------------------

    def http_request(self, exchange: HTTPExchange) -> None:
        """A request head arrived; without an override the plugin answers 404."""
        exchange.respond(404, [("Content-Type", "text/plain; charset=utf-8")], b"not found\n")

    def http_body(self, exchange: HTTPExchange, chunk: bytes) -> None:
        pass

    def http_body_complete(self, exchange: HTTPExchange) -> None:
        pass
