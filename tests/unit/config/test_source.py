"""Tests for the lwsws JSON dialect parser: comments, duplicates, positions and syntax errors."""

from __future__ import annotations

import json

import pytest

from pyws.supervisor.config.model import Location
from pyws.supervisor.config.source import (
    ArrayNode,
    BoolNode,
    Node,
    NullNode,
    NumberNode,
    ObjectNode,
    SourceError,
    StringNode,
    parse_source,
)

FILE = "/etc/pyws/conf"


def parse(text: str, data_dir: str = "/usr/share") -> Node:
    return parse_source(text, FILE, data_dir)


def plain(node: Node) -> object:
    """The node as plain Python, objects as member lists so duplicates show."""
    match node:
        case ObjectNode():
            return [(key.name, plain(value)) for key, value in node.members]
        case ArrayNode():
            return [plain(item) for item in node.items]
        case NullNode():
            return None
        case _:
            return node.value


def syntax_error(text: str) -> tuple[int, int, str]:
    with pytest.raises(SourceError) as info:
        parse(text)
    location = info.value.location
    assert location.file == FILE
    return location.line, location.col, info.value.message


def test_plain_json_values() -> None:
    text = '{"s": "x", "i": -12, "f": 1.5e2, "t": true, "n": null, "a": [1, {}], "e": []}'
    assert plain(parse(text)) == [
        ("s", "x"),
        ("i", -12),
        ("f", 150.0),
        ("t", True),
        ("n", None),
        ("a", [1, []]),
        ("e", []),
    ]


def test_agrees_with_json_module_on_escapes() -> None:
    text = r'"a\"b\\c\/d\b\f\n\r\t \u00e9 \ud83d\ude00"'
    assert plain(parse(text)) == json.loads(text)


def test_comments_run_to_end_of_line_outside_strings() -> None:
    text = '# leading\n{ # after brace\n "a": "x # not a comment", # trailing\n "b": 1 #\n}\n# end'
    assert plain(parse(text)) == [("a", "x # not a comment"), ("b", 1)]


def test_comment_at_end_of_file_without_newline() -> None:
    assert plain(parse("[1] # done")) == [1]


def test_duplicate_keys_are_all_kept_in_order() -> None:
    node = parse('{"filespath": "/a", "x": 1, "filespath": "/b"}')
    assert plain(node) == [("filespath", "/a"), ("x", 1), ("filespath", "/b")]
    assert isinstance(node, ObjectNode)
    last = node.get("filespath")
    assert isinstance(last, StringNode)
    assert last.value == "/b"
    assert node.get("missing") is None


def test_data_dir_is_substituted_in_string_values_only() -> None:
    node = parse('{"_lws_ddir_": "file://_lws_ddir_/x/_lws_ddir_"}', data_dir="/opt/share")
    assert plain(node) == [("_lws_ddir_", "file:///opt/share/x//opt/share")]


def test_number_keeps_its_text() -> None:
    node = parse("[5000, 1.50]")
    assert isinstance(node, ArrayNode)
    first, second = node.items
    assert isinstance(first, NumberNode)
    assert isinstance(second, NumberNode)
    assert (first.value, first.text) == (5000, "5000")
    assert (second.value, second.text) == (1.5, "1.50")


def test_every_value_and_key_knows_its_line_and_column() -> None:
    text = '{\n\t"a": [true,\n  "s"],\n  "b": {}\n}'
    node = parse(text)
    assert isinstance(node, ObjectNode)
    assert node.location == Location(FILE, 1, 1)
    (key_a, array), (key_b, obj) = node.members
    assert key_a.location == Location(FILE, 2, 2)
    assert array.location == Location(FILE, 2, 7)
    assert isinstance(array, ArrayNode)
    assert isinstance(array.items[0], BoolNode)
    assert array.items[0].location == Location(FILE, 2, 8)
    assert array.items[1].location == Location(FILE, 3, 3)
    assert key_b.location == Location(FILE, 4, 3)
    assert obj.location == Location(FILE, 4, 8)


def test_column_counts_characters_not_bytes() -> None:
    node = parse('{"é": "ü", "k": 1}')
    assert isinstance(node, ObjectNode)
    key, _ = node.members[1]
    assert key.location.col == 12


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ('{"a": 1\n "b": 2}', 2, 2, "expected ',' or '}', found a string"),
        ('{"a": 1,\n}', 2, 1, "expected a string key, found '}' (no comma after the last member)"),
        ("[1, 2,]", 1, 7, "expected a value, found ']' (no comma after the last item)"),
        ("[1 2]", 1, 4, "expected ',' or ']', found '2'"),
        ('{"a" 1}', 1, 6, "expected ':' after key 'a', found '1'"),
        ("{a: 1}", 1, 2, "expected a string key or '}', found 'a'"),
        ("{\"a\": 'x'}", 1, 7, "expected a value, found \"'x'\" (strings use double quotes)"),
        ('{"a": tru}', 1, 7, "expected a value, found 'tru'"),
        ('{"a": 01}', 1, 7, "expected a value, found '01'"),
        ("[trueish]", 1, 2, "expected a value, found 'trueish'"),
        ("[1.]", 1, 2, "expected a value, found '1.'"),
        ("[-]", 1, 2, "expected a value, found '-'"),
        ("[+1]", 1, 2, "expected a value, found '+1'"),
        ('{\n  "a": "open\n}', 2, 8, "unterminated string"),
        ('["x\\q"]', 1, 4, "invalid escape '\\q' in a string"),
        ('["\\u12"]', 1, 3, "'\\u' must be followed by four hex digits"),
        ('["\\ud800x"]', 1, 3, "unpaired surrogate '\\uD800' in a string"),
        ('["a\tb"]', 1, 4, "control character U+0009 in a string"),
        ("", 1, 1, "expected a value, found end of file"),
        ("# only a comment\n", 2, 1, "expected a value, found end of file"),
        ("[1e999]", 1, 2, "number 1e999 is out of range"),
        ("[1,\n -1e999]", 2, 2, "number -1e999 is out of range"),
    ],
)
def test_syntax_errors_say_where_and_what(text: str, line: int, col: int, message: str) -> None:
    assert syntax_error(text) == (line, col, message)


def test_trailing_garbage() -> None:
    assert syntax_error('{"a": 1}\n}') == (
        2,
        1,
        "unexpected '}' after the end of the top-level value",
    )
    assert syntax_error("{} {}") == (1, 4, "unexpected '{' after the end of the top-level value")


def test_unclosed_object_names_where_it_opened() -> None:
    line, col, message = syntax_error('{\n  "vhosts": [{\n    "port": 1\n')
    assert (line, col) == (4, 1)
    assert (
        message == "expected ',' or '}', found end of file (the one opened at 2:14 is never closed)"
    )


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    _, _, message = syntax_error("[" * 500)
    assert message.startswith("nesting deeper than")


def test_source_error_str_has_the_location() -> None:
    with pytest.raises(SourceError, match=r"^/etc/pyws/conf:1:2: expected a string key"):
        parse("{1}")
