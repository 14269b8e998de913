"""A CGI request's objects go by reference counting once its script is reaped."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pyws_harness import live_objects, wait_until

from pyws.supervisor.config.model import MountConfig, OriginKind
from pyws.worker.cgi.process import CGIRun
from pyws.worker.exchange import Exchange
from pyws.worker.http.protocol import HTTPProtocol

if TYPE_CHECKING:
    from tests.integration.conftest import Serve


def test_a_cgi_request_leaves_nothing_for_the_garbage_collector(
    serve: Serve, tmp_path: Path
) -> None:
    """The exchange and its CGIRun refer to each other while the script runs: once it is
    reaped, they and the connection must be freed at once, not left to the cycle collector
    (under connection churn, that walk cost 7% of a CGI request's instructions)."""
    script = tmp_path / "hello"
    script.write_text('#!/bin/sh\necho "Content-Type: text/plain"\necho\necho hello\n')
    script.chmod(0o755)
    mount = MountConfig(
        mountpoint="/hello", origin=f"cgi://{script}", kind=OriginKind.CGI, target=str(script)
    )
    site = serve((mount,))
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            # HTTP/1.0 without keep-alive: each request has a connection of its own.
            response = httpx.get(site.url("/hello"), headers={"Connection": "close"})
            assert response.status_code == 200 and response.text == "hello\n"
        wait_until(lambda: site.server.connections == 0, 5, "the connections to close")
        wait_until(lambda: not site.server._streams, 5, "the scripts to be reaped")
        kinds = (CGIRun, Exchange, HTTPProtocol)
        wait_until(lambda: not any(live_objects(k) for k in kinds), 5, "the objects to be freed")
    finally:
        gc.enable()
