"""A mount's stderr pipe: what scripts write reaches the log at once, named by the script."""

from __future__ import annotations

import logging

import pytest

from pyws.worker.cgi.stderr import StderrLog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_each_line_of_a_read_is_logged_and_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pyws.cgi")
    stderr = StderrLog("/srv/cgi/app")
    stderr.feed(b"first line\n\nsecond\n")
    assert messages(caplog) == [
        "cgi /srv/cgi/app stderr: first line",
        "cgi /srv/cgi/app stderr: second",
    ]


def test_last_words_without_a_newline_are_not_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pipe is shared: what follows may be another script's, so nothing waits for the
    end of a line (and a script that dies mid-line is still heard)."""
    caplog.set_level(logging.WARNING, logger="pyws.cgi")
    stderr = StderrLog("app")
    stderr.feed(b"fatal: no config")
    assert messages(caplog) == ["cgi app stderr: fatal: no config"]
    stderr.feed(b"\xff tail\n")  # not UTF-8: replaced, not an error
    assert messages(caplog)[-1] == "cgi app stderr: \ufffd tail"
