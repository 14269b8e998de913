"""Tests for read_snapshot: which files a config dir gives, in which order, and read errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyws.supervisor.config.loader import ConfigError, read_snapshot


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_conf_then_conf_d_in_alphabetical_order_skipping_tilde_names(tmp_path: Path) -> None:
    write(tmp_path / "conf", "C")
    for name in ["b", "a", "A", "10-x", "a~", "~b", "#c~", "z.json"]:
        write(tmp_path / "conf.d" / name, name)
    (tmp_path / "conf.d" / "subdir").mkdir()
    os.symlink(tmp_path / "conf.d" / "b", tmp_path / "conf.d" / "link")
    snapshot = read_snapshot(str(tmp_path))
    assert snapshot.config_dir == str(tmp_path)
    assert [(os.path.relpath(path, tmp_path), text) for path, text in snapshot.files] == [
        ("conf", "C"),
        ("conf.d/10-x", "10-x"),
        ("conf.d/A", "A"),
        ("conf.d/a", "a"),
        ("conf.d/b", "b"),
        ("conf.d/link", "b"),
        ("conf.d/z.json", "z.json"),
    ]


def test_conf_d_is_optional(tmp_path: Path) -> None:
    write(tmp_path / "conf", "{}")
    assert read_snapshot(str(tmp_path)).files == ((str(tmp_path / "conf"), "{}"),)


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "conf").write_bytes(b"\xef\xbb\xbf{}")
    assert read_snapshot(str(tmp_path)).files[0][1] == "{}"


def test_missing_conf_is_an_error_at_line_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_snapshot(str(tmp_path))
    (diagnostic,) = info.value.diagnostics
    assert str(diagnostic) == (
        f"{tmp_path}/conf:1:1: "
        "missing: a config dir must hold a 'conf' file with the global settings"
    )
    assert str(info.value) == str(diagnostic)


def test_every_unreadable_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf.d" / "ok", "{}")
    (tmp_path / "conf.d" / "latin1").write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(ConfigError) as info:
        read_snapshot(str(tmp_path))
    assert [str(d) for d in info.value.diagnostics] == [
        f"{tmp_path}/conf:1:1: cannot read: Is a directory",
        f"{tmp_path}/conf.d/latin1:1:1: not UTF-8 text (bad byte at offset 13)",
    ]


def test_conf_d_that_is_not_a_directory_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "conf", "{}")
    write(tmp_path / "conf.d", "{}")
    with pytest.raises(ConfigError, match=r"conf\.d:1:1: cannot read: Not a directory"):
        read_snapshot(str(tmp_path))
