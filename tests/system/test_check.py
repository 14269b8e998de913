"""`pyws --check` and `pyws-ctl check`: exit 0, or 78 with FILE:LINE:COL errors."""

from __future__ import annotations

import subprocess

from pyws_harness import PYWS, PYWS_CTL, Site


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYWS, *args, "--check"], capture_output=True, text=True, timeout=30)


def test_good_config_exits_zero(site: Site) -> None:
    out = check("-c", str(site.conf_dir))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout


def test_embedded_demo_config_is_valid() -> None:
    out = subprocess.run([PYWS, "--check"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_errors_name_file_line_column_and_key(site: Site) -> None:
    site.write_conf(
        raw="""{
  "global": {"count-threads": "many"},
  "vhosts": [{
    "name": "a",
    "mounts": [{"mountpoint": "/", "origin": "gopher://x"}]
  }]
}
"""
    )
    conf = site.conf_dir / "conf"
    out = check("-c", str(site.conf_dir))
    assert out.returncode == 78
    lines = out.stdout.splitlines()
    assert any(
        line.startswith(f"{conf}:2:") and "global.count-threads" in line for line in lines
    ), lines
    assert any(line.startswith(f"{conf}:3:") and "port" in line for line in lines), lines
    assert any(
        line.startswith(f"{conf}:5:") and "vhosts[0].mounts[0].origin" in line for line in lines
    ), lines


def test_syntax_error_and_conf_d(site: Site) -> None:
    bad = site.conf_dir / "conf.d" / "b-site"
    bad.write_text('{"vhosts": [\n  {"name": "b", "port": 80,}\n]}\n')
    (site.conf_dir / "conf.d" / "a-site~").write_text("this backup file is skipped")
    out = check("-c", str(site.conf_dir))
    assert out.returncode == 78
    assert f"{bad}:2:" in out.stdout
    assert "a-site~" not in out.stdout


def test_missing_conf(site: Site) -> None:
    (site.conf_dir / "conf").unlink()
    out = check("-c", str(site.conf_dir))
    assert out.returncode == 78
    assert str(site.conf_dir / "conf") in out.stdout + out.stderr


def test_ctl_check_matches(site: Site) -> None:
    run = [PYWS_CTL, "-c", str(site.conf_dir), "--pidfile", str(site.base / "x.pid"), "check"]
    assert subprocess.run(run, capture_output=True, timeout=30).returncode == 0
    site.write_conf(raw="{")
    out = subprocess.run(run, capture_output=True, text=True, timeout=30)
    assert out.returncode == 78
    assert f"{site.conf_dir / 'conf'}:1:" in out.stdout
