"""The demo site in headless Chromium, driven over the DevTools protocol, on the real root."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pyws_harness import Pyws, Site, stop_group, wait_until
from websockets.sync.client import ClientConnection, connect

from pyws.supervisor.config.loader import default_data_dir

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Every tab but one is in the background: keep their timers and rendering at full speed.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--window-size=1000,900",
    "--remote-debugging-port=0",
)

pytestmark = [
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"{CHROMIUM} is not installed: as root, `make setup` installs Debian's chromium "
        "(or run `apt-get install chromium`)",
    ),
    pytest.mark.timeout(120),
]


class CDPError(Exception):
    """The browser answered a DevTools command with an error."""


class DevTools:
    """A DevTools protocol connection to the browser; pages are flat sessions on it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its answer; events that arrive meanwhile are dropped
        (this client enables no domain, so there are few)."""
        number = next(self._ids)
        command: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        self.ws.send(json.dumps(command))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == number:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result


class Page:
    """One tab."""

    def __init__(self, devtools: DevTools, url: str) -> None:
        self.devtools = devtools
        target = devtools.call("Target.createTarget", url=url)["targetId"]
        self.session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def value(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (None while it throws, e.g.
        before the page has loaded or while it navigates)."""
        try:
            result = self.devtools.call(
                "Runtime.evaluate", self.session, expression=expression, returnByValue=True
            )
        except CDPError:  # the page's context went away: a navigation
            return None
        if "exceptionDetails" in result:
            return None
        return result["result"].get("value")

    def ws_state(self) -> str | None:
        state: str | None = self.value("document.getElementById('ws-state')?.textContent")
        return state

    def wait_for(self, selector: str) -> None:
        """Until the page has an element matching `selector` (a new tab starts on about:blank,
        whose readyState is "complete" already)."""
        query = f"document.querySelector({json.dumps(selector)}) !== null"
        wait_until(lambda: self.value(query), 20, f"{selector} in the page")

    def wait_open(self) -> None:
        wait_until(lambda: self.ws_state() == "open", 20, "the page's WebSocket open")

    def mouse(self, kind: str, x: float, y: float, buttons: int) -> None:
        self.devtools.call(
            "Input.dispatchMouseEvent",
            self.session,
            type=kind,
            x=x,
            y=y,
            button="left",
            buttons=buttons,
            clickCount=1,
        )


class Chromium:
    """Headless Chromium in its own process group, with a profile and HOME of its own."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.profile = base / "profile"
        self.home = base / "home"  # crashpad keeps its database under $HOME
        self.profile.mkdir()
        self.home.mkdir()
        self.log = base / "chromium.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the browser; its DevTools WebSocket URL."""
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**os.environ, "HOME": str(self.home)},
            )
        # With --remote-debugging-port=0, Chromium writes the port it bound and the browser
        # target's path to this file.
        lines = wait_until(self._active_port, 30, "chromium's DevToolsActivePort")
        return f"ws://127.0.0.1:{lines[0]}{lines[1]}"

    def _active_port(self) -> list[str] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"chromium exited early:\n{self.log.read_text(errors='replace')}")
        with contextlib.suppress(OSError):
            lines = (self.profile / "DevToolsActivePort").read_text().split()
            if len(lines) == 2:
                return lines
        return None

    def leftovers(self) -> list[psutil.Process]:
        """Processes of this browser: its group, and what left the group (crashpad's handlers
        start their own session) but names our profile or HOME on its command line."""
        assert self.proc is not None
        found = []
        ours = f"{self.base}/"
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                cmdline = " ".join(proc.info["cmdline"] or ())
                if os.getpgid(proc.pid) == self.proc.pid or ours in cmdline:
                    found.append(proc)
        return found

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc, grace=10)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not self.leftovers(), 5, "chromium's helpers gone")
        for proc in self.leftovers():
            with contextlib.suppress(psutil.Error):
                proc.kill()  # one of ours, by pid: it names our temporary directory
        wait_until(lambda: not self.leftovers(), 10, "no chromium process left")


@pytest.fixture
def demo(pyws: Pyws, site: Site) -> str:
    """The embedded demo config as shipped, on port 0: the base URL it serves."""
    shipped = (Path(default_data_dir()) / "conf").read_text()
    assert shipped.count('"port": "7681"') == 1
    site.write_conf(raw=shipped.replace('"port": "7681"', '"port": "0"'))
    pyws.start()
    return f"http://127.0.0.1:{pyws.port()}"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    chromium = Chromium(tmp_path)
    try:
        with connect(chromium.start(), max_size=None, open_timeout=10, proxy=None) as ws:
            yield DevTools(ws)
    finally:
        chromium.stop()


def counter(page: Page) -> int | None:
    text = page.value("document.getElementById('count')?.textContent")
    return int(text) if isinstance(text, str) and text.isdigit() else None


def test_counter_counts_resets_and_closes(demo: str, browser: DevTools) -> None:
    page = Page(browser, f"{demo}/counter.html")
    page.wait_open()
    first = wait_until(lambda: counter(page), 10, "a first number")
    wait_until(lambda: (counter(page) or 0) >= first + 20, 10, "the counter to go on")
    before = counter(page)
    assert before is not None
    page.value("document.getElementById('reset').click()")
    wait_until(lambda: (counter(page) or 0) < before, 10, "the counter to start again")
    page.value("document.getElementById('closeme').click()")
    wait_until(lambda: page.ws_state() == "closed: 1001 seeya", 10, "the server to close")


def test_mirror_strokes_cross_between_tabs(demo: str, browser: DevTools) -> None:
    url = f"{demo}/mirror.html?mirror=browser-{uuid.uuid4().hex[:8]}"
    drawer, watcher = Page(browser, url), Page(browser, url)
    drawer.wait_open()
    watcher.wait_open()
    box = drawer.value(
        "(() => { const r = document.getElementById('canvas').getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })()"
    )
    left, top, width, height = box
    # Input to a tab in the background waits for a frame that never comes (5 s per event).
    browser.call("Page.bringToFront", drawer.session)
    y = top + height / 2
    xs = [left + width * (0.2 + 0.05 * i) for i in range(9)]
    drawer.mouse("mousePressed", xs[0], y, 1)
    for x in xs[1:]:
        drawer.mouse("mouseMoved", x, y, 1)
    drawer.mouse("mouseReleased", xs[-1], y, 0)

    def received(page: Page) -> int:
        return int(page.value("document.getElementById('received').textContent") or 0)

    strokes = len(xs) - 1  # one per move with the button down
    wait_until(lambda: received(watcher) == strokes, 10, "the strokes in the other tab")
    # The sender gets its own strokes back, as every member of the group.
    wait_until(lambda: received(drawer) == strokes, 10, "the strokes back in the drawing tab")
    # The other tab drew them: the middle of the line is painted on its canvas.
    cx, cy = round((xs[4] - left) * 640 / width), round((y - top) * 400 / height)
    alpha = watcher.value(
        f"document.getElementById('canvas').getContext('2d').getImageData({cx}, {cy}, 1, 1).data[3]"
    )
    assert alpha and alpha > 0


def test_status_page_follows_a_reload(demo: str, pyws: Pyws, browser: DevTools) -> None:
    page = Page(browser, f"{demo}/status.html")
    page.wait_open()
    rows_js = (
        "[...document.querySelectorAll('#generations tr')]"
        ".map((tr) => [...tr.children].map((td) => td.textContent))"
    )
    (pid,) = pyws.generations()[0]["pids"]
    rows = wait_until(lambda: page.value(rows_js), 10, "the generations table")
    assert [(r[0], r[1], r[2]) for r in rows] == [("1", "active", str(pid))]
    assert pyws.reload().returncode == 0
    # The page's generation is deprecated: it reconnects to generation 2, and generation 1
    # exits once the browser's idle keep-alive connections time out (5 s in the config).
    wait_until(lambda: page.value("document.getElementById('mine').textContent") == "2", 20)
    wait_until(
        lambda: [(r[0], r[1]) for r in page.value(rows_js) or ()] == [("2", "active")],
        20,
        "only generation 2 in the table",
    )


def form_results(page: Page, button: str) -> list[str]:
    """Submit the form of `button`; the cells of the plugin's answer: name, length, value."""
    page.value(f"document.querySelector('button[value={button}]').click()")
    cells = "[...document.querySelectorAll('td')].map((td) => td.textContent)"
    answered = "document.title === 'Form results'"
    found: list[str] = wait_until(lambda: page.value(answered) and page.value(cells), 10)
    return found


def field(cells: list[str], name: str) -> list[str]:
    start = cells.index(name)
    return cells[start : start + 3]


def test_form_posts_urlencoded_and_multipart(demo: str, browser: DevTools, tmp_path: Path) -> None:
    page = Page(browser, f"{demo}/form.html")
    page.wait_for("button[value=urlencoded]")
    cells = form_results(page, "urlencoded")
    assert field(cells, "message") == ["message", "20", "hello, world & café"]  # UTF-8 bytes
    assert field(cells, "send") == ["send", "10", "urlencoded"]

    upload = tmp_path / "upload.txt"
    upload.write_bytes(b"x" * 1234)
    page = Page(browser, f"{demo}/form.html")
    page.wait_for("input[type=file]")
    found = browser.call(
        "Runtime.evaluate", page.session, expression="document.querySelector('input[type=file]')"
    )
    object_id = found["result"]["objectId"]
    browser.call("DOM.setFileInputFiles", page.session, files=[str(upload)], objectId=object_id)
    cells = form_results(page, "multipart")
    assert field(cells, "file") == ["file", "1234", "file upload.txt"]
    assert field(cells, "text") == ["text", "9", "some text"]
