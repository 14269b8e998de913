"""The lwsws README (the config spec) examples load, failing only on features not built yet."""

from __future__ import annotations

import textwrap

import pytest

from pyws.supervisor.config import features
from pyws.supervisor.config.loader import ConfigSnapshot, Diagnostic, load_config
from pyws.supervisor.config.model import Config, OriginKind

# Verbatim from the README, comments included (tabs turned into spaces).
CONF = """\
    # these are the server global settings
    # stuff related to vhosts should go in one
    # file per vhost in ../conf.d/

    {
      "global": {
       "username": "apache",
       "groupname": "apache",
       "count-threads": "1",
       "server-string": "myserver v1", # returned in http headers
       "ws-pingpong-secs": "200", # confirm idle established ws connections this often
       "init-ssl": "yes"
     }
    }
"""

WARMCAT = """\
    {
        "vhosts": [{
            "name": "warmcat.com",
            "port": "443",
            "interface": "eth0",  # optional
            "host-ssl-key": "/etc/pki/tls/private/warmcat.com.key",  # if given enable ssl
            "host-ssl-cert": "/etc/pki/tls/certs/warmcat.com.crt",
            "host-ssl-ca": "/etc/pki/tls/certs/warmcat.com.cer",
            "mounts": [{  # autoserve
                "mountpoint": "/",
                "origin": "file:///var/www/warmcat.com",
                "default": "index.html"
            }]
        }]
    }
"""

LOCALHOST = """\
    {
     "vhosts": [ {
         "name": "localhost",
         "port": "443",
         "host-ssl-key":  "/etc/pki/tls/private/libwebsockets.org.key",
         "host-ssl-cert": "/etc/pki/tls/certs/libwebsockets.org.crt",
         "host-ssl-ca":   "/etc/pki/tls/certs/libwebsockets.org.cer",
         "mounts": [{
           "mountpoint": "/",
           "origin": "file:///var/www/libwebsockets.org",
           "default": "index.html"
           }, {
            "mountpoint": "/testserver",
            "origin": "file:///usr/local/share/libwebsockets-test-server",
            "default": "test.html"
           }],
         # which protocols are enabled for this vhost, and optional
         # vhost-specific config options for the protocol
         #
         "ws-protocols": [{
           "warmcat,timezoom": {
             "status": "ok"
           }
         }]
        },
        {
        "name": "localhost",
        "port": "7681",
         "host-ssl-key":  "/etc/pki/tls/private/libwebsockets.org.key",
         "host-ssl-cert": "/etc/pki/tls/certs/libwebsockets.org.crt",
         "host-ssl-ca":   "/etc/pki/tls/certs/libwebsockets.org.cer",
         "mounts": [{
           "mountpoint": "/",
           "origin": ">https://localhost"
         }]
       },
        {
        "name": "localhost",
        "port": "80",
         "mounts": [{
           "mountpoint": "/",
           "origin": ">https://localhost"
         }]
       }

      ]
    }
"""

# The README's mount and option snippets, gathered into one vhost.
SNIPPETS = """\
    {"global": {"reject-service-keywords": [{"scumbot": "404 Not Found"}], "timeout-secs": 5,
                "plugin-dir": "/usr/local/share/coherent-timeline/plugins"},
     "vhosts": [{"name": "snippets", "port": 7682, "keeplive-timeout": 60, "sts": "1",
       "unix-socket-perms": "user:group", "access-log": "/var/log/lwsws/access.log",
       "enable-client-ssl": "1", "ciphers": "HIGH", "ecdh-curve": "prime256v1",
       "noipv6": "on", "ipv6only": "off", "ssl-option-set": "268435456", "ssl-option-clear": "1",
       "headers": [{"Content-Security-Policy": "script-src 'self'",
                    "X-Content-Type-Options": "nosniff", "X-XSS-Protection": "1; mode=block",
                    "X-Frame-Options": "SAMEORIGIN"}],
       "listen-accept-role": "raw-proxy", "listen-accept-protocol": "myprotocol",
       "fallback-listen-accept": "1", "allow-non-tls": "1", "client-cert-required": "1",
       "mounts": [
         {"mountpoint": "/stuff", "origin": "callback://myprotocol",
          "pmo": [{"myname": "myvalue"}]},
         {"mountpoint": "/git", "origin": "cgi:///var/www/cgi-bin/cgit", "default": "/",
          "cgi-env": [{"CGIT_CONFIG": "/etc/cgitrc/libwebsockets.org"}], "cgi-timeout": "30"},
         {"mountpoint": "/cgit-data", "origin": "file:///usr/share/cgit", "default": "/"},
         {"mountpoint": "/proxytest", "origin": "https://libwebsockets.org"},
         {"mountpoint": "/cached", "origin": "file:///var/www/mysite.com",
          "cache-max-age": "60",      # seconds
          "cache-reuse": "1",         # allow reuse at client at all
          "cache-revalidate": "1",    # check it with server each time
          "cache-intermediaries": "1", # allow intermediary caches to hold
          "extra-mimetypes": {".zip": "application/zip", ".doc": "text/evil", "*": ""}},
         {"mountpoint": "/basic-auth",
          "origin": "file://_lws_ddir_/libwebsockets-test-server/private",
          "basic-auth": "/var/www/balogins-private"},
         {"mountpoint": "/formtest", "origin": "callback://protocol-post-demo"},
         {"mountpoint": "/server-status",
          "origin": "file:///usr/local/share/libwebsockets-test-server/server-status",
          "default": "server-status.html"}],
       "ws-protocols": [{"warmcat-timezoom": {"status": "ok", "default": "1"},
                         "lws-server-status": {"status": "ok", "update-ms": "5000",
                                               "hide-vhosts": "1", "filespath": "/a",
                                               "filespath": "/b"}}]}]}
"""


def load(*files: tuple[str, str]) -> tuple[Config | None, tuple[Diagnostic, ...]]:
    snapshot = ConfigSnapshot(
        "/etc/lwsws", tuple((path, textwrap.dedent(text)) for path, text in files)
    )
    return load_config(snapshot, "/usr/share")


README_FILES = (
    ("/etc/lwsws/conf", CONF),
    ("/etc/lwsws/conf.d/localhost", LOCALHOST),
    ("/etc/lwsws/conf.d/warmcat.com", WARMCAT),
)


@pytest.mark.parametrize("files", [README_FILES, (("/etc/lwsws/conf", SNIPPETS),)])
def test_examples_fail_only_for_features_not_built_yet(files: tuple[tuple[str, str], ...]) -> None:
    config, diagnostics = load(*files)
    assert config is None
    assert diagnostics
    for diagnostic in diagnostics:
        assert diagnostic.severity == "error"
        assert "is not built yet in this pyws" in diagnostic.message, str(diagnostic)


def test_tls_is_what_stops_the_big_example() -> None:
    _, diagnostics = load(*README_FILES)
    tls = [str(d) for d in diagnostics if d.message == "TLS is not built yet in this pyws"]
    assert tls[0] == "/etc/lwsws/conf:12:4: global.init-ssl: TLS is not built yet in this pyws"
    assert (
        "/etc/lwsws/conf.d/warmcat.com:7:9: vhosts[0].host-ssl-cert: "
        + ("TLS is not built yet in this pyws")
        in tls
    )


def test_big_example_loads_once_everything_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "NOT_BUILT", {})
    config, diagnostics = load(*README_FILES)
    assert config is not None, [str(d) for d in diagnostics]
    assert diagnostics == ()
    assert (config.global_.username, config.global_.ws_pingpong_secs) == ("apache", 200.0)
    assert [(v.name, v.port, v.tls is not None) for v in config.vhosts] == [
        ("localhost", 443, True),
        ("localhost", 7681, True),
        ("localhost", 80, False),
        ("warmcat.com", 443, True),
    ]
    assert config.vhosts[0].ws_protocols[0].name == "warmcat,timezoom"
    assert config.vhosts[2].mounts[0].kind is OriginKind.REDIRECT
    assert config.vhosts[3].interface == "eth0"


def test_snippets_load_once_everything_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "NOT_BUILT", {})
    config, diagnostics = load(("/etc/lwsws/conf", SNIPPETS))
    assert config is not None, [str(d) for d in diagnostics]
    assert diagnostics == ()
    (vhost,) = config.vhosts
    assert [m.kind for m in vhost.mounts] == [
        OriginKind.CALLBACK,
        OriginKind.CGI,
        OriginKind.FILE,
        OriginKind.PROXY,
        OriginKind.FILE,
        OriginKind.FILE,
        OriginKind.CALLBACK,
        OriginKind.FILE,
    ]
    assert vhost.mounts[5].target == "/usr/share/libwebsockets-test-server/private"
    status = vhost.ws_protocols[1]
    assert status.options_all("filespath") == ("/a", "/b")
