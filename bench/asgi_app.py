"""The uvicorn peer's ASGI app: the bench docroot's files, read once, served from memory."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

DOCROOT_ENV = "PYWS_BENCH_DOCROOT"  # set by bench.peers.UvicornServer for its workers

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TYPES = {".html": b"text/html", ".txt": b"text/plain"}
_NOT_FOUND: Message = {
    "type": "http.response.start",
    "status": 404,
    "headers": [(b"content-length", b"0")],
}


def load_files(docroot: Path) -> dict[str, tuple[Message, Message]]:
    """URL path → (response start, response body) messages for each regular file of `docroot`.

    Built once, so a request costs the app two awaits and a dict lookup: what is measured is
    uvicorn's own per-request work, as with a framework-free endpoint.
    """
    files: dict[str, tuple[Message, Message]] = {}
    for path in sorted(docroot.iterdir()):
        if not path.is_file():
            continue
        body = path.read_bytes()
        headers = [
            (b"content-type", _TYPES.get(path.suffix, b"application/octet-stream")),
            (b"content-length", b"%d" % len(body)),
        ]
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        files["/" + path.name] = (start, {"type": "http.response.body", "body": body})
    return files


_FILES = load_files(Path(os.environ[DOCROOT_ENV])) if DOCROOT_ENV in os.environ else {}


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """GET any file of the docroot by name; 404 for anything else (run with --lifespan off)."""
    if scope["type"] != "http":
        return
    found = _FILES.get(scope["path"])
    if found is None:
        await send(_NOT_FOUND)
        await send({"type": "http.response.body", "body": b""})
        return
    start, body = found
    await send(start)
    await send(body)
