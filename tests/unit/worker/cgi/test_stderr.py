"""A mount's stderr pipe: whole lines reach the log, named by the script."""

from __future__ import annotations

import logging

import pytest

from pyws.worker.cgi.stderr import MAX_LINE, StderrLog


def test_lines_are_logged_whole_and_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pyws.cgi")
    stderr = StderrLog("/srv/cgi/app")
    stderr.feed(b"first li")
    assert not caplog.records  # half a line waits for its end
    stderr.feed(b"ne\n\nsecond\nthi")
    stderr.feed(b"rd\n")
    assert [r.getMessage() for r in caplog.records] == [
        "cgi /srv/cgi/app stderr: first line",
        "cgi /srv/cgi/app stderr: second",
        "cgi /srv/cgi/app stderr: third",
    ]


def test_a_line_without_end_is_logged_in_pieces(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pyws.cgi")
    stderr = StderrLog("app")
    stderr.feed(b"x" * (MAX_LINE + 1))
    assert [len(r.getMessage()) for r in caplog.records] == [len("cgi app stderr: ") + MAX_LINE + 1]
    stderr.feed(b"\xff tail\n")  # not UTF-8: replaced, not an error
    assert caplog.records[-1].getMessage() == "cgi app stderr: \ufffd tail"
