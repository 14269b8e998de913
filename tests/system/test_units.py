"""The shipped systemd unit and logrotate file are valid and match the contract."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "systemd" / "pyws.service")
    return parser


def test_unit_contract() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert "pyws-ctl" in service["ExecReload"] and " reload" in service["ExecReload"]
    assert service["KillMode"] == "mixed"
    assert service["RestartPreventExitStatus"] == "78"
    # Above the drain bound: the 10 s stop drain plus the root's 5 s grace.
    assert int(service["TimeoutStopSec"]) > 15


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (ROOT / "systemd" / "pyws.service").read_text()
    # verify checks that the executables exist: point it at this venv's.
    path = tmp_path / "pyws.service"
    path.write_text(text.replace("/usr/local/bin/", f"{BIN}/"))
    out = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_logrotate_uses_copytruncate() -> None:
    text = (ROOT / "systemd" / "pyws.logrotate").read_text()
    assert "/var/log/pyws/*log {" in text
    assert "\n    copytruncate" in text
    logrotate = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin")
    if logrotate:
        out = subprocess.run(
            [logrotate, "-d", str(ROOT / "systemd" / "pyws.logrotate")],
            capture_output=True,
            text=True,
        )
        assert "error" not in out.stderr.lower(), out.stderr
