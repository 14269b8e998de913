"""Tests for config diagnostics: every error and warning, with its exact FILE:LINE:COL and path."""

from __future__ import annotations

import textwrap

import pytest

from pyws.supervisor.config import features
from pyws.supervisor.config.loader import ConfigSnapshot, load_config

CONF = "/cfg/conf"
MOUNT = '{"mountpoint": "/", "origin": "file:///srv"}'
BOOLS = "(1/0, on/off, yes/no, true/false)"


def snapshot(conf: str, *fragments: tuple[str, str]) -> ConfigSnapshot:
    files = [(CONF, textwrap.dedent(conf))]
    files += [(f"/cfg/conf.d/{name}", textwrap.dedent(text)) for name, text in fragments]
    return ConfigSnapshot("/cfg", tuple(files))


def diagnostics(conf: str, *fragments: tuple[str, str]) -> list[str]:
    config, found = load_config(snapshot(conf, *fragments), "/usr/share")
    assert (config is None) == any(d.severity == "error" for d in found)
    return [str(d) for d in found]


def errors(conf: str, *fragments: tuple[str, str]) -> list[str]:
    return [line for line in diagnostics(conf, *fragments) if ": warning: " not in line]


def one_vhost(vhost: str = "", global_: str = "") -> str:
    extra = f", {vhost}" if vhost else ""
    return f'{{"global": {{{global_}}}, "vhosts": [{{"port": 0, "mounts": [{MOUNT}]{extra}}}]}}'


def at(text: str, needle: str, nth: int = 1, file: str = CONF) -> str:
    """`FILE:LINE:COL` of the `nth` occurrence of `needle` in a (dedented) config text."""
    text = textwrap.dedent(text)
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{file}:{line}:{col}"


def test_at_counts_lines_and_columns_from_one() -> None:
    assert at('{"a": 1,\n "b": "a"}', '"a"', nth=2) == f"{CONF}:2:7"


def test_wrong_types_are_errors_at_the_value() -> None:
    conf = """\
        {"global": {"count-threads": 0, "timeout-secs": "soon"},
         "vhosts": [{"name": ["x"], "port": 70000, "mounts": {}}]}
    """
    assert at(conf, "soon") == "/cfg/conf:1:50"
    soon, name, port, mounts = at(conf, '"soon'), at(conf, '["x"]'), at(conf, "7"), at(conf, "{}")
    zero = at(conf, "0")
    assert errors(conf) == [
        f"{zero}: global.count-threads: expected a whole number >= 1 or 'auto', found 0",
        f"{soon}: global.timeout-secs: expected a number of seconds >= 0, found 'soon'",
        f"{name}: vhosts[0].name: expected a string, found a list",
        f"{port}: vhosts[0].port: expected a port number 0..65535, found 70000",
        f"{mounts}: vhosts[0].mounts: expected a list, found an object",
    ]


def test_missing_required_keys_are_errors_at_the_enclosing_object() -> None:
    conf = """\
        {"vhosts": [
          {"name": "a",
           "mounts": [{"default": "x"}, {"mountpoint": "/b"}]}]}
    """
    vhost, first, second = at(conf, '{"name'), at(conf, '{"default'), at(conf, '{"mountpoint')
    assert (vhost, first, second) == ("/cfg/conf:2:3", "/cfg/conf:3:15", "/cfg/conf:3:33")
    assert errors(conf) == [
        f"{vhost}: vhosts[0].port: missing required key 'port'",
        f"{first}: vhosts[0].mounts[0].mountpoint: missing required key 'mountpoint'",
        f"{first}: vhosts[0].mounts[0].origin: missing required key 'origin'",
        f"{second}: vhosts[0].mounts[1].origin: missing required key 'origin'",
    ]


def test_mountpoint_must_be_absolute_and_unique_within_a_vhost() -> None:
    conf = """\
        {"vhosts": [{"port": 80, "mounts": [
          {"mountpoint": "/a", "origin": "file:///x"},
          {"mountpoint": "b", "origin": "file:///y"},
          {"mountpoint": "/a", "origin": "file:///z"}]},
          {"port": 81, "mounts": [{"mountpoint": "/a", "origin": "file:///x"}]}]}
    """
    first, second = at(conf, '"/a"'), at(conf, '"/a"', nth=2)
    assert (first, second) == ("/cfg/conf:2:18", "/cfg/conf:4:18")
    relative = at(conf, '"b"')
    assert errors(conf) == [
        f"{relative}: vhosts[0].mounts[1].mountpoint: mountpoint must start with '/', found 'b'",
        f"{second}: vhosts[0].mounts[2].mountpoint: duplicate mountpoint '/a' (first at 2:18)",
    ]


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        (
            "ftp://x",
            "unknown origin scheme in 'ftp://x': use one of file://, cgi://, callback://, "
            ">http://, >https://, ^http://, ^https://, http://, https://",
        ),
        ("file://relative", "file:// origin needs an absolute directory, found 'file://relative'"),
        ("cgi://", "cgi:// origin needs a target after the scheme"),
        (">https://", ">https:// origin needs a target after the scheme"),
    ],
)
def test_bad_origins(origin: str, message: str) -> None:
    conf = f'{{"vhosts": [{{"port": 1, "mounts": [{{"mountpoint": "/", "origin": "{origin}"}}]}}]}}'
    where = at(conf, f'"{origin}"')
    assert errors(conf) == [f"{where}: vhosts[0].mounts[0].origin: {message}"]


def test_unknown_keys_warn_with_a_suggestion_and_still_load() -> None:
    conf = """\
        {"global": {"usernme": "x"},
         "vhost": [],
         "vhosts": [{"port": 1, "intreface": "lo",
                     "mounts": [{"mountpoint": "/", "origin": "file:///x", "xyzzy": 1}]}]}
    """
    interface, xyzzy = at(conf, '"intreface'), at(conf, '"xyzzy')
    assert interface == "/cfg/conf:3:25"
    assert diagnostics(conf) == [
        "/cfg/conf:1:13: global.usernme: warning: unknown key 'usernme' (did you mean 'username'?)",
        "/cfg/conf:2:2: vhost: warning: unknown key 'vhost' (did you mean 'vhosts'?)",
        f"{interface}: vhosts[0].intreface: warning: unknown key 'intreface' "
        "(did you mean 'interface'?)",
        f"{xyzzy}: vhosts[0].mounts[0].xyzzy: warning: unknown key 'xyzzy'",
    ]


def test_misspelt_required_key_gives_a_warning_and_an_error() -> None:
    conf = '{"vhosts": [{"port": 1, "mounts": [{"mountpont": "/", "origin": "file:///x"}]}]}'
    assert diagnostics(conf) == [
        "/cfg/conf:1:36: vhosts[0].mounts[0].mountpoint: missing required key 'mountpoint'",
        "/cfg/conf:1:37: vhosts[0].mounts[0].mountpont: warning: unknown key 'mountpont' "
        "(did you mean 'mountpoint'?)",
    ]


def test_a_key_repeated_in_one_object_warns_and_the_last_wins() -> None:
    conf = one_vhost('"keepalive-timeout": 5, "keeplive-timeout": 6')
    first, again = at(conf, '"keepalive-timeout"'), at(conf, '"keeplive-timeout"')
    assert diagnostics(conf) == [
        f"{again}: vhosts[0].keeplive-timeout: warning: 'keeplive-timeout' is given again: "
        f"this value overrides the one at {first.split(':', 1)[1]}"
    ]


def test_all_errors_are_collected_across_files_in_one_pass() -> None:
    conf = one_vhost('"port": -1', global_='"timeout-secs": []')
    broken = '{"vhosts": [\n  {"port": 1,,}]}'
    more = '{"vhosts": [{"port": "x", "mounts": [{"mountpoint": "/", "origin": "gopher://"}]}]}'
    lines = errors(conf, ("10-broken", broken), ("20-more", more))
    assert [line.split(": ", 1)[0] for line in lines] == [
        at(conf, "[]"),
        at(conf, "-1"),
        "/cfg/conf.d/10-broken:2:14",
        at(more, '"x"', file="/cfg/conf.d/20-more"),
        at(more, '"gopher', file="/cfg/conf.d/20-more"),
    ]
    assert lines[2] == "/cfg/conf.d/10-broken:2:14: expected a string key, found ','"


def test_top_level_shape_errors() -> None:
    assert errors("[1]") == ["/cfg/conf:1:1: expected an object at the top level, found a list"]
    assert errors('{"global": 1, "vhosts": "x"}') == [
        "/cfg/conf:1:12: global: expected an object, found a number",
        "/cfg/conf:1:25: vhosts: expected a list, found a string",
    ]
    assert errors('{"vhosts": [7]}') == [
        "/cfg/conf:1:13: vhosts[0]: expected a vhost object, found a number"
    ]


def test_no_vhosts_at_all_is_an_error() -> None:
    assert errors('{"global": {}}', ("a", '{"vhosts": []}')) == [
        "/cfg/conf:1:1: vhosts: no vhosts: give at least one in conf or in a conf.d/ file"
    ]


def test_conf_d_vhost_paths_count_within_their_file() -> None:
    fragment = '{"vhosts": [{"port": 1, "mounts": []}, {"name": "b"}]}'
    assert errors(one_vhost(), ("b", fragment)) == [
        "/cfg/conf.d/b:1:40: vhosts[1].port: missing required key 'port'"
    ]


@pytest.mark.parametrize("value", ['"maybe"', "2", "null", "[]"])
def test_bad_boolean_names_the_accepted_spellings(value: str) -> None:
    conf = one_vhost(f'"sts": {value}')
    shown = {"null": "null", "[]": "a list"}.get(value, value.replace('"', "'"))
    assert errors(conf)[-1] == (
        f"{at(conf, value)}: vhosts[0].sts: expected a boolean {BOOLS}, found {shown}"
    )


def test_not_built_features_are_errors_and_still_type_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fixed table: the real one shrinks as issues land; this tests the mechanism.
    tls = features.Pending("TLS")
    monkeypatch.setattr(
        features,
        "NOT_BUILT",
        {
            "global.ws-pingpong-secs": features.Pending("ws-pingpong-secs", 5),
            "vhost.host-ssl-cert": tls,
            "vhost.host-ssl-key": tls,
            "origin.cgi": features.Pending("the cgi:// origin", 4),
            "mount.cache-max-age": features.Pending("cache-max-age", 3),
        },
    )
    conf = """\
        {"global": {"ws-pingpong-secs": "x"},
         "vhosts": [{"port": 443, "host-ssl-cert": "/c", "host-ssl-key": "/k",
                     "mounts": [{"mountpoint": "/", "origin": "cgi:///bin/x",
                                 "cache-max-age": -1}]}]}
    """
    pingpong, x, cert, key = (at(conf, n) for n in ('"ws-', '"x"', '"host-ssl-c', '"host-ssl-k'))
    cgi, cache, minus = at(conf, '"cgi:'), at(conf, '"cache'), at(conf, "-1")
    assert (pingpong, key, cgi) == ("/cfg/conf:1:13", "/cfg/conf:2:50", "/cfg/conf:3:55")
    assert errors(conf) == [
        f"{pingpong}: global.ws-pingpong-secs: "
        "ws-pingpong-secs is not built yet in this pyws (issue 5)",
        f"{x}: global.ws-pingpong-secs: expected a number of seconds >= 0, found 'x'",
        f"{cert}: vhosts[0].host-ssl-cert: TLS is not built yet in this pyws",
        f"{key}: vhosts[0].host-ssl-key: TLS is not built yet in this pyws",
        f"{cgi}: vhosts[0].mounts[0].origin: "
        "the cgi:// origin is not built yet in this pyws (issue 4)",
        f"{cache}: vhosts[0].mounts[0].cache-max-age: "
        "cache-max-age is not built yet in this pyws (issue 3)",
        f"{minus}: vhosts[0].mounts[0].cache-max-age: expected a whole number >= 0, found -1",
    ]


def test_protocol_options_must_be_scalars_and_flags_booleans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(features.NOT_BUILT, "vhost.ws-protocols", raising=False)
    conf = one_vhost(
        '"ws-protocols": [{"p": {"a": {}, "default": "often", "raw": 1}}, {"q": 5}, 1]'
    )
    empty, often, raw, five, one = (at(conf, n) for n in ('{}, "d', '"often', '"raw', "5", "1]"))
    assert errors(conf) == [
        f"{empty}: vhosts[0].ws-protocols[0].p.a: expected a string, found an object",
        f"{often}: vhosts[0].ws-protocols[0].p.default: expected a boolean {BOOLS}, found 'often'",
        f"{raw}: vhosts[0].ws-protocols[0].p.raw: "
        "listen-accept (raw and fallback vhosts) is not built yet in this pyws",
        f"{five}: vhosts[0].ws-protocols[1].q: "
        "expected an object of protocol options, found a number",
        f"{one}: vhosts[0].ws-protocols[2]: expected an object of protocols, found a number",
    ]


def test_errors_inside_value_lists_point_at_the_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "NOT_BUILT", {})
    conf = one_vhost(
        '"headers": [{"X-Ok": "1"}, {"Bad Name": "2"}], "ssl-option-set": "0x10"',
        global_='"reject-service-keywords": [{"bot": "4040 Nope"}]',
    )
    status, name, bits = at(conf, '"4040'), at(conf, '"Bad'), at(conf, '"0x10')
    assert errors(conf) == [
        f"{status}: global.reject-service-keywords[0].bot: "
        "expected an HTTP status like '404 Not Found', found '4040 Nope'",
        f"{name}: vhosts[0].headers[1].Bad Name: 'Bad Name' is not a valid HTTP header name",
        f"{bits}: vhosts[0].ssl-option-set: expected a whole number >= 0, found '0x10'",
    ]


def test_tls_needs_both_cert_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "NOT_BUILT", {})
    conf = one_vhost('"host-ssl-cert": "/c"')
    cert = at(conf, '"host')
    assert errors(conf) == [
        f"{cert}: vhosts[0].host-ssl-cert: host-ssl-cert needs host-ssl-key too"
    ]


def test_unix_socket_needs_an_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "NOT_BUILT", {})
    conf = one_vhost('"unix-socket": "1"')
    unix = at(conf, '"unix')
    assert errors(conf) == [
        f"{unix}: vhosts[0].unix-socket: unix-socket needs 'interface' to give the socket's path"
    ]
