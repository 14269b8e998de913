"""Tests for load_config and friends: merging, defaults, typed values and the public API."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest

import pyws.supervisor
from pyws.supervisor.config import features
from pyws.supervisor.config.loader import (
    ConfigError,
    ConfigSnapshot,
    Diagnostic,
    default_data_dir,
    load_config,
    load_config_dir,
)
from pyws.supervisor.config.model import Config, Location, OriginKind
from pyws.supervisor.config.schema import GLOBAL, PVO_FLAGS, VHOST
from pyws.supervisor.config.schema import MOUNT as MOUNT_LEVEL

CONF = "/cfg/conf"
DATA_DIR = "/usr/share/pyws"
MOUNT = '{"mountpoint": "/", "origin": "file:///srv"}'


def snapshot(conf: str, *fragments: tuple[str, str]) -> ConfigSnapshot:
    """`conf` plus conf.d files given as (name, text), all dedented."""
    files = [(CONF, textwrap.dedent(conf))]
    files += [(f"/cfg/conf.d/{name}", textwrap.dedent(text)) for name, text in fragments]
    return ConfigSnapshot("/cfg", tuple(files))


def load(conf: str, *fragments: tuple[str, str]) -> tuple[Config | None, list[str]]:
    config, diagnostics = load_config(snapshot(conf, *fragments), DATA_DIR)
    return config, [str(d) for d in diagnostics]


def load_ok(conf: str, *fragments: tuple[str, str]) -> Config:
    config, lines = load(conf, *fragments)
    assert config is not None, "\n".join(lines)
    return config


def errors(conf: str, *fragments: tuple[str, str]) -> list[str]:
    config, diagnostics = load_config(snapshot(conf, *fragments), DATA_DIR)
    assert config is None
    return [str(d) for d in diagnostics if d.severity == "error"]


def one_vhost(vhost: str = "", global_: str = "") -> str:
    """A conf with one vhost on port 0 serving a file mount, plus extra members as JSON text."""
    extra = f", {vhost}" if vhost else ""
    return f'{{"global": {{{global_}}}, "vhosts": [{{"port": 0, "mounts": [{MOUNT}]{extra}}}]}}'


def test_minimal_config_gets_the_defaults() -> None:
    config = load_ok(one_vhost())
    assert config.config_dir == "/cfg"
    assert config.global_.count_threads == 1
    assert config.global_.timeout_secs == 5.0
    assert config.global_.deprecated_timeout_secs is None
    (vhost,) = config.vhosts
    assert (vhost.name, vhost.port, vhost.keepalive_timeout, vhost.tls) == (
        "default",
        0,
        60.0,
        None,
    )
    (mount,) = vhost.mounts
    assert (mount.kind, mount.target, mount.default) == (OriginKind.FILE, "/srv", "index.html")


def test_built_global_and_vhost_keys_are_read() -> None:
    conf = """\
        {"global": {"username": "www", "groupname": "www", "count-threads": 3,
                    "server-string": "pyws", "timeout-secs": "2.5",
                    "deprecated-timeout-secs": 30, "plugin-dir": "/p"},
         "vhosts": [{"name": "example.com", "port": "7681", "interface": "127.0.0.1",
                     "mounts": [{"mountpoint": "/docs", "origin": "file://_lws_ddir_/docs",
                                 "default": "start.html"}]}]}
    """
    config = load_ok(conf)
    g = config.global_
    assert (g.username, g.groupname, g.count_threads, g.server_string) == ("www", "www", 3, "pyws")
    assert (g.timeout_secs, g.deprecated_timeout_secs, g.plugin_dirs) == (2.5, 30.0, ("/p",))
    (vhost,) = config.vhosts
    assert (vhost.name, vhost.port, vhost.interface) == ("example.com", 7681, "127.0.0.1")
    assert vhost.listen_key == "127.0.0.1:7681"
    (mount,) = vhost.mounts
    assert mount.origin == "file:///usr/share/pyws/docs"
    assert (mount.mountpoint, mount.target, mount.default) == (
        "/docs",
        "/usr/share/pyws/docs",
        "start.html",
    )
    assert vhost.location == Location(CONF, 4, 13)
    assert mount.location == Location(CONF, 5, 40)


def test_count_threads_auto_is_the_cpu_count() -> None:
    config = load_ok(one_vhost(global_='"count-threads": "AUTO"'))
    assert config.global_.count_threads == (os.cpu_count() or 1)


@pytest.mark.parametrize("spelling", ["keepalive-timeout", "keeplive-timeout", "keepalive_timeout"])
def test_three_keepalive_spellings(spelling: str) -> None:
    (vhost,) = load_ok(one_vhost(f'"{spelling}": "7"')).vhosts
    assert vhost.keepalive_timeout == 7.0


def test_keepalive_zero_is_kept_not_defaulted() -> None:
    (vhost,) = load_ok(one_vhost('"keepalive-timeout": 0')).vhosts
    assert vhost.keepalive_timeout == 0.0


def test_global_merges_across_files_and_vhosts_append_in_file_order() -> None:
    conf = '{"global": {"username": "a", "timeout-secs": 9, "plugin-dir": "/p1"}}'
    first = """
        {"global": {"username": "b", "plugin-dir": "/p2"},
         "vhosts": [{"name": "one", "port": 1}]}
    """
    second = """
        {"global": {"plugin-dir": "/p3"},
         "vhosts": [{"name": "two", "port": 2}, {"name": "three", "port": 3}]}
    """
    config = load_ok(conf, ("a-first", first), ("b-second", second))
    assert config.global_.username == "b"
    assert config.global_.timeout_secs == 9.0
    assert config.global_.plugin_dirs == ("/p1", "/p2", "/p3")
    assert [v.name for v in config.vhosts] == ["one", "two", "three"]


def test_every_not_built_entry_names_a_known_key_or_origin() -> None:
    known = {f"{level.name}.{key}" for level in (GLOBAL, VHOST, MOUNT_LEVEL) for key in level.keys}
    known |= {f"origin.{kind.value}" for kind in OriginKind}
    known |= {f"pvo.{flag}" for flag in PVO_FLAGS}
    assert set(features.NOT_BUILT) <= known


def test_not_built_keys_are_still_parsed_into_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a later issue does: delete the table entries, and the parsed values come through."""
    monkeypatch.setattr(features, "NOT_BUILT", {})
    conf = """\
        {"global": {"reject-service-keywords": [{"scumbot": "404 Not Found"}, {"x": "451"}],
                    "ws-pingpong-secs": 200, "init-ssl": "yes"},
         "vhosts": [{"port": 443, "host-ssl-cert": "/c", "host-ssl-key": "/k",
                     "ssl-option-set": 16, "ssl-option-set": "268435456", "sts": "on",
                     "headers": [{"X-A": "1"}, {"X-B": 2}], "access-log": "/log",
                     "mounts": [{"mountpoint": "/", "origin": ">https://example.com",
                                 "cache-max-age": "60", "cache-reuse": 1, "pmo": [{"a": "b"}],
                                 "extra-mimetypes": {".zip": "application/zip"}},
                                {"mountpoint": "/cgi", "origin": "cgi:///bin/x",
                                 "cgi-env": [{"K": "V"}], "cgi-timeout": 30}]}]}
    """
    config = load_ok(conf)
    g = config.global_
    assert g.reject_service_keywords == (("scumbot", 404, "Not Found"), ("x", 451, ""))
    assert (g.ws_pingpong_secs, g.init_ssl) == (200.0, True)
    (vhost,) = config.vhosts
    assert vhost.tls is not None
    assert (vhost.tls.cert, vhost.tls.key, vhost.tls.option_set) == ("/c", "/k", 16 | 268435456)
    assert (vhost.sts, vhost.access_log) == (True, "/log")
    assert vhost.headers == (("X-A", "1"), ("X-B", "2"))
    redirect, cgi = vhost.mounts
    assert (redirect.kind, redirect.target) == (OriginKind.REDIRECT, "https://example.com")
    assert (redirect.cache_max_age, redirect.cache_reuse, redirect.pmo) == (60, True, (("a", "b"),))
    assert redirect.extra_mimetypes == ((".zip", "application/zip"),)
    assert (cgi.kind, cgi.target, cgi.cgi_timeout) == (OriginKind.CGI, "/bin/x", 30.0)
    assert cgi.cgi_env == (("K", "V"),)


def test_client_tls_and_listen_accept_reach_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "NOT_BUILT", {})
    config = load_ok(
        one_vhost(
            '"enable-client-ssl": 1, "client-ssl-ciphers": "HIGH", "ssl-client-option-set": 4,'
            ' "ssl-client-option-set": 8, "listen-accept-role": "raw-proxy",'
            ' "listen-accept-protocol": "myprotocol", "apply-listen-accept": "1"'
        )
    )
    (vhost,) = config.vhosts
    assert vhost.client_tls is not None
    assert (vhost.client_tls.ciphers, vhost.client_tls.option_set) == ("HIGH", 12)
    assert vhost.listen_accept is not None
    accept = vhost.listen_accept
    assert (accept.role, accept.protocol, accept.apply) == ("raw-proxy", "myprotocol", True)
    assert not accept.fallback


def test_ready_timeout_is_a_pyws_global() -> None:
    assert load_ok(one_vhost()).global_.ready_timeout_secs == 30.0
    assert load_ok(one_vhost(global_='"ready-timeout-secs": "2"')).global_.ready_timeout_secs == 2


def test_ws_protocols_keep_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "NOT_BUILT", {})
    protocols = """
        "ws-protocols": [
            {"lws-server-status": {"filespath": "/a", "update-ms": 5000, "filespath": "/b",
                                   "default": "1"}},
            {"dumb-increment-protocol": {}, "raw-thing": {"raw": "on"}}]
    """
    (vhost,) = load_ok(one_vhost(protocols)).vhosts
    status, dumb, raw = vhost.ws_protocols
    assert [p.name for p in vhost.ws_protocols] == [
        "lws-server-status",
        "dumb-increment-protocol",
        "raw-thing",
    ]
    assert status.options_all("filespath") == ("/a", "/b")
    assert status.option("update-ms") == "5000"
    assert status.options[-1] == ("default", "1")
    assert (status.default, status.raw, dumb.default, dumb.options, raw.raw) == (
        True,
        False,
        False,
        (),
        True,
    )


@pytest.mark.parametrize(
    ("origin", "kind", "target"),
    [
        ("file:///var/www", OriginKind.FILE, "/var/www"),
        ("cgi:///usr/lib/cgit", OriginKind.CGI, "/usr/lib/cgit"),
        ("callback://protocol-post-demo", OriginKind.CALLBACK, "protocol-post-demo"),
        (">http://example.com/x", OriginKind.REDIRECT, "http://example.com/x"),
        (">https://localhost", OriginKind.REDIRECT, "https://localhost"),
        ("^https://localhost", OriginKind.REDIRECT, "https://localhost"),
        ("http://127.0.0.1:8080", OriginKind.PROXY, "http://127.0.0.1:8080"),
        ("https://libwebsockets.org", OriginKind.PROXY, "https://libwebsockets.org"),
    ],
)
def test_origin_kinds(
    monkeypatch: pytest.MonkeyPatch, origin: str, kind: OriginKind, target: str
) -> None:
    monkeypatch.setattr(features, "NOT_BUILT", {})
    conf = f'{{"vhosts": [{{"port": 1, "mounts": [{{"mountpoint": "/", "origin": "{origin}"}}]}}]}}'
    (mount,) = load_ok(conf).vhosts[0].mounts
    assert (mount.origin, mount.kind, mount.target) == (origin, kind, target)


def test_snapshot_round_trips_through_json() -> None:
    snap = snapshot(one_vhost(), ("a", '{"vhosts": []}  # ünïcode\n'))
    again = ConfigSnapshot.from_json(snap.to_json())
    assert again == snap
    assert load_config(again, DATA_DIR) == load_config(snap, DATA_DIR)


@pytest.mark.parametrize(
    "text", ["[]", '{"files": []}', '{"config_dir": "/c", "files": [["only-path"]]}']
)
def test_snapshot_from_json_refuses_other_json(text: str) -> None:
    with pytest.raises(ValueError, match="not a config snapshot"):
        ConfigSnapshot.from_json(text)


def test_diagnostic_str_formats() -> None:
    where = Location("/f", 3, 4)
    assert str(Diagnostic(where, "a.b", "bad", "error")) == "/f:3:4: a.b: bad"
    assert str(Diagnostic(where, "a.b", "odd", "warning")) == "/f:3:4: a.b: warning: odd"
    assert str(Diagnostic(where, "", "syntax", "error")) == "/f:3:4: syntax"


def test_load_config_dir_logs_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "conf").write_text(one_vhost('"nmae": "x"'))
    with caplog.at_level(logging.WARNING, logger="pyws.config"):
        config = load_config_dir(str(tmp_path), DATA_DIR)
    assert config.config_dir == str(tmp_path)
    col = one_vhost('"nmae": "x"').index('"nmae"') + 1
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path}/conf:1:{col}: vhosts[0].nmae: warning: "
        "unknown key 'nmae' (did you mean 'name'?)"
    ]


def test_load_config_dir_raises_with_every_diagnostic(tmp_path: Path) -> None:
    (tmp_path / "conf").write_text('{"vhosts": [{"prot": 1}]}')
    with pytest.raises(ConfigError) as info:
        load_config_dir(str(tmp_path), DATA_DIR)
    assert str(info.value) == (
        f"{tmp_path}/conf:1:13: vhosts[0].port: missing required key 'port'\n"
        f"{tmp_path}/conf:1:14: vhosts[0].prot: warning: unknown key 'prot' (did you mean 'port'?)"
    )
    assert [d.severity for d in info.value.diagnostics] == ["error", "warning"]


def test_default_data_dir_is_the_share_package() -> None:
    expected = Path(pyws.supervisor.__file__).resolve().parent / "share"
    assert default_data_dir() == str(expected)
