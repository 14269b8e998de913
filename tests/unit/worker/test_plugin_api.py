"""The plugin API: HTTP exchanges, the post demo's forms, finding and initialising plugins."""

from __future__ import annotations

import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from pyws.supervisor.config.model import (
    Config,
    GlobalConfig,
    MountConfig,
    OriginKind,
    ProtocolConfig,
    VhostConfig,
)
from pyws.worker.builtin_plugins.post_demo import PostDemo
from pyws.worker.http.events import Request
from pyws.worker.plugin_api import HTTPExchange, Plugin, PluginContext, PluginError, WorkerInfo
from pyws.worker.plugins import PluginSet, discover_plugins
from pyws.worker.world import World

MOUNT = MountConfig(
    "/formtest",
    "callback://protocol-post-demo",
    OriginKind.CALLBACK,
    "protocol-post-demo",
    pmo=(("k", "v"),),
)
VHOST = VhostConfig(name="localhost", port=80, mounts=(MOUNT,))


class Sink:
    """Records what an HTTPExchange sends (the HTTP connection's side of the interface)."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.length: int | None = None
        self.data = b""
        self.ended = False

    def head(
        self, status: int, headers: tuple[tuple[bytes, bytes], ...], length: int | None
    ) -> None:
        self.status, self.headers, self.length = status, dict(headers), length

    def body(self, data: bytes) -> None:
        self.data += data

    def end(self) -> None:
        self.ended = True


def exchange_for(request: httpx.Request) -> tuple[HTTPExchange, Sink]:
    headers = tuple((k.lower().encode(), v.encode()) for k, v in request.headers.items())
    head = Request(
        request.method.encode(),
        request.url.raw_path,
        "1.1",
        headers,
        b"localhost",
        True,
        False,
        False,
    )
    sink = Sink()
    return HTTPExchange(head, MOUNT, "", sink), sink


def post(request: httpx.Request) -> Sink:
    """Drive the post demo through its callbacks, the content in small chunks."""
    plugin = PostDemo(
        PluginContext(VHOST, ProtocolConfig(PostDemo.name), World(1, 1), WorkerInfo(1, 1))
    )
    exchange, sink = exchange_for(request)
    plugin.http_request(exchange)
    content = request.read()
    for i in range(0, len(content), 7):
        plugin.http_body(exchange, content[i : i + 7])
    plugin.http_body_complete(exchange)
    return sink


class Table(HTMLParser):
    """The rows of an HTML table, read by the stdlib parser."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.rows[-1].append("")
            self.in_cell = True

    def handle_endtag(self, tag: str) -> None:
        self.in_cell = self.in_cell and tag != "td"

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.rows[-1][-1] += data


def table(sink: Sink) -> list[list[str]]:
    parser = Table()
    parser.feed(sink.data.decode())
    return parser.rows


def test_urlencoded_post_is_a_table_of_its_fields() -> None:
    sink = post(httpx.Request("POST", "http://x/formtest", data={"text": "a <b> & é", "send": ""}))
    assert sink.status == 200 and sink.ended
    assert sink.headers[b"Content-Type"].startswith(b"text/html")
    assert sink.length == len(sink.data)
    assert table(sink) == [
        ["Name", "Length", "Value"],
        ["text", "10", "a <b> & é"],
        ["send", "0", ""],
    ]


def test_multipart_post_with_a_file() -> None:
    request = httpx.Request(
        "POST",
        "http://x/formtest",
        data={"text": "hello"},
        files={"file": ("notes.txt", b"\x00" * 1000, "application/octet-stream")},
    )
    rows = table(post(request))
    assert rows[1] == ["text", "5", "hello"]
    assert rows[2] == ["file", "1000", "file notes.txt"]


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (
            httpx.Request(
                "POST", "http://x/", content=b"{}", headers={"Content-Type": "application/json"}
            ),
            415,
        ),
        (
            httpx.Request(
                "POST",
                "http://x/",
                content=b"--x\r\nno end",
                headers={"Content-Type": "multipart/form-data; boundary=y"},
            ),
            400,
        ),
        (httpx.Request("POST", "http://x/", data={"big": "x" * (1 << 20)}), 413),
        (httpx.Request("PUT", "http://x/", content=b""), 405),
    ],
    ids=["json", "bad-multipart", "too-big", "put"],
)
def test_what_the_post_demo_refuses(request_: httpx.Request, status: int) -> None:
    sink = post(request_)
    assert sink.status == status and sink.ended


def test_get_shows_the_form() -> None:
    sink = post(httpx.Request("GET", "http://x/formtest"))
    assert sink.status == 200 and b"<form" in sink.data


def test_exchange_rules() -> None:
    exchange, sink = exchange_for(httpx.Request("GET", "http://x/formtest/a?q=1"))
    assert exchange.pmo == {"k": "v"} and exchange.query == "q=1"
    assert exchange.header("Host") is not None
    with pytest.raises(ValueError):
        exchange.send_head(200, [("Bad Name", "x")])
    exchange.send_head(200, [("X-A", "1"), ("Content-Length", "99")])  # ours counts, not theirs
    assert sink.headers == {b"X-A": b"1"} and sink.length is None
    with pytest.raises(RuntimeError):
        exchange.respond(200)
    exchange.send_body(b"chunk")
    exchange.end()
    assert exchange.complete and sink.data == b"chunk"


# -- finding and initialising plugins -------------------------------------------------------------


def test_builtins_are_always_there() -> None:
    found = discover_plugins(())
    assert {
        "dumb-increment-protocol",
        "lws-mirror-protocol",
        "lws-server-status",
        "protocol-post-demo",
    } <= set(found)


def test_plugin_dir_modules(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        textwrap.dedent("""
        from pyws.worker.plugin_api import Plugin
        from pyws.worker.builtin_plugins.mirror import Mirror  # imported: not this module's

        class Mine(Plugin):
            name = "mine"

        class Unnamed(Plugin):
            pass

        class MyMirror(Plugin):
            name = "lws-mirror-protocol"  # replaces the built-in one
    """)
    )
    found = discover_plugins((str(tmp_path),))
    assert found["mine"].__name__ == "Mine"
    assert found["lws-mirror-protocol"].__name__ == "MyMirror"


def test_a_plugin_module_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise ImportError('missing dependency')\n")
    with pytest.raises(PluginError, match=r"broken\.py: ImportError: missing dependency"):
        discover_plugins((str(tmp_path),))


def test_two_plugins_of_one_name(tmp_path: Path) -> None:
    for module in ("a", "b"):
        (tmp_path / f"{module}.py").write_text(
            "from pyws.worker.plugin_api import Plugin\nclass P(Plugin):\n    name = 'same'\n"
        )
    with pytest.raises(PluginError, match="already loaded"):
        discover_plugins((str(tmp_path),))


def test_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ep_plugin.py").write_text(
        "from pyws.worker.plugin_api import Plugin\nclass Ep(Plugin):\n    name = 'from-ep'\n"
    )
    info = tmp_path / "ep_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pyws.plugins]\nep = ep_plugin:Ep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert discover_plugins(())["from-ep"].__name__ == "Ep"
    (info / "entry_points.txt").write_text("[pyws.plugins]\nep = no_such_module:Ep\n")
    with pytest.raises(PluginError, match="entry point ep"):
        discover_plugins(())
    sys.modules.pop("ep_plugin", None)


class Picky(Plugin):
    name = "picky"

    def __init__(self, context: PluginContext) -> None:
        super().__init__(context)
        self.count = context.number("count", 1)
        self.verbose = context.flag("verbose")


def plugin_set(*protocols: ProtocolConfig, mounts: tuple[MountConfig, ...] = ()) -> PluginSet:
    vhost = VhostConfig(name="v", port=80, ws_protocols=protocols, mounts=mounts)
    config = Config("/nonexistent", GlobalConfig(), (vhost,))
    classes = {"picky": Picky, PostDemo.name: PostDemo}
    return PluginSet(config, World(1, 1), WorkerInfo(1, 1), classes)


def test_init_gets_its_pvo_once_per_vhost() -> None:
    plugins = plugin_set(ProtocolConfig("picky", (("count", "3"), ("verbose", "on"))))
    (picky,) = plugins.plugins
    assert isinstance(picky, Picky) and (picky.count, picky.verbose) == (3, True)


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        (ProtocolConfig("picky", (("count", "three"),)), "count: expected a whole number"),
        (ProtocolConfig("picky", (("verbose", "maybe"),)), "verbose: expected a boolean"),
        (ProtocolConfig("nobody-provides-this"), "no plugin provides protocol"),
        (ProtocolConfig("picky", (("basic-auth", "/nonexistent/logins"),)), "basic-auth file"),
    ],
)
def test_what_fails_the_boot(protocol: ProtocolConfig, message: str) -> None:
    with pytest.raises((PluginError, OSError), match=message):
        plugin_set(protocol)


def test_callback_mounts_get_an_instance_without_ws_protocols() -> None:
    plugins = plugin_set(mounts=(MOUNT,))
    vhost = plugins.plugins[0].context.vhost
    assert isinstance(plugins.plugin(vhost, "protocol-post-demo"), PostDemo)
    assert plugins.offer(vhost).by_name == {}  # a callback mount offers no WebSocket
    origin = plugins.callback_origin(vhost, MOUNT)
    assert origin.plugin is plugins.plugin(vhost, "protocol-post-demo")
