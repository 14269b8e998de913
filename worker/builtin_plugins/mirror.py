"""`lws-mirror-protocol`: every message goes to every member of its group, sender included."""

from __future__ import annotations

from pyws.worker.plugin_api import Plugin, PluginContext, WebSocket


class Mirror(Plugin):
    """Groups are named by `?mirror=NAME` (no name: the default group), any number of them.

    A message is delivered whole and of its kind (text stays text, binary stays binary), to
    the members on every worker of this generation through the world channel of the vhost.
    """

    name = "lws-mirror-protocol"

    def __init__(self, context: PluginContext) -> None:
        super().__init__(context)
        self.groups: dict[str, set[WebSocket]] = {}
        vhost = context.vhost
        self.channel = context.world.channel(f"{self.name}/{vhost.name}:{vhost.port}")
        self.channel.deliver = self._deliver

    def established(self, ws: WebSocket) -> None:
        group = ws.query_param("mirror") or ""
        ws.session = group
        self.groups.setdefault(group, set()).add(ws)

    def message(self, ws: WebSocket, message: str | bytes) -> None:
        self.channel.publish(ws.session, message)

    def _deliver(self, group: str, message: str | bytes) -> None:
        members = self.groups.get(group)
        if members:
            # A copy: a member that cannot keep up is closed while we iterate.
            for member in tuple(members):
                member.send(message)

    def closed(self, ws: WebSocket, code: int) -> None:
        group: str = ws.session
        members = self.groups.get(group)
        if members is not None:
            members.discard(ws)
            if not members:
                del self.groups[group]
