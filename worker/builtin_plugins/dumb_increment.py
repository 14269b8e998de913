"""`dumb-increment-protocol`: each client gets a text counter every 50 ms, as lws's plugin."""

from __future__ import annotations

import asyncio

from pyws.worker.plugin_api import Plugin, PluginContext, WebSocket

PERIOD_SECS = 0.05  # lws: DUMB_PERIOD_US


class DumbIncrement(Plugin):
    """Counts from 0 per connection. "reset\\n" zeroes the count; "closeme\\n" closes with 1001
    and the reason "seeya". The pvo `options` with bit 0 set stops the periodic sends."""

    name = "dumb-increment-protocol"

    def __init__(self, context: PluginContext) -> None:
        super().__init__(context)
        self.quiet = bool(context.number("options", 0) & 1)
        self.clients: set[WebSocket] = set()
        self._timer: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def established(self, ws: WebSocket) -> None:
        ws.session = 0
        self.clients.add(ws)
        if self._timer is None and not self.quiet:
            self._timer = self.loop.call_later(PERIOD_SECS, self._tick)

    def _tick(self) -> None:
        # One timer for the vhost, like lws_callback_on_writable_all_protocol_vhost(): each
        # client gets one number per tick, and none while it cannot take more.
        for ws in self.clients:
            ws.request_writable()
        self._timer = self.loop.call_later(PERIOD_SECS, self._tick) if self.clients else None

    def writable(self, ws: WebSocket) -> None:
        number: int = ws.session
        ws.session = number + 1
        ws.send(str(number))

    def message(self, ws: WebSocket, message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        # lws compares the first bytes of the message and ignores anything shorter than 6.
        if data.startswith(b"reset\n"):
            ws.session = 0
        elif data.startswith(b"closeme\n"):
            ws.close(1001, "seeya")

    def closed(self, ws: WebSocket, code: int) -> None:
        self.clients.discard(ws)
