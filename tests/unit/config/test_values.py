"""Tests for value kinds: lwsws's text-or-number scalars, booleans, seconds, pairs."""

from __future__ import annotations

import os

import pytest

from pyws.supervisor.config.source import parse_source
from pyws.supervisor.config.values import (
    ValueProblem,
    parse_bool,
    parse_map,
    parse_pairs,
    parse_port,
    parse_seconds,
    parse_text,
    parse_threads,
)


@pytest.mark.parametrize(
    "text",
    ['"1"', "1", "true", '"on"', '"ON"', '"yes"', '"Yes"', '"true"', '"TRUE"'],
)
def test_true_spellings(text: str) -> None:
    assert parse_bool(parse_source(text, "/f", "/d")) is True


@pytest.mark.parametrize(
    "text",
    ['"0"', "0", "false", '"off"', '"Off"', '"no"', '"NO"', '"false"', '"False"'],
)
def test_false_spellings(text: str) -> None:
    assert parse_bool(parse_source(text, "/f", "/d")) is False


@pytest.mark.parametrize(
    ("text", "found"),
    [('"y"', "'y'"), ("2", "2"), ('" on"', "' on'"), ("null", "null"), ("{}", "an object")],
)
def test_other_booleans_are_refused(text: str, found: str) -> None:
    with pytest.raises(ValueProblem) as info:
        parse_bool(parse_source(text, "/f", "/d"))
    assert (
        info.value.message == f"expected a boolean (1/0, on/off, yes/no, true/false), found {found}"
    )


def test_text_accepts_numbers_as_written() -> None:
    assert parse_text(parse_source("7681", "/f", "/d")) == "7681"
    assert parse_text(parse_source("0.50", "/f", "/d")) == "0.50"
    with pytest.raises(ValueProblem, match="expected a string, found true"):
        parse_text(parse_source("true", "/f", "/d"))


@pytest.mark.parametrize(("text", "port"), [('"7681"', 7681), ("0", 0), ('"65535"', 65535)])
def test_ports(text: str, port: int) -> None:
    assert parse_port(parse_source(text, "/f", "/d")) == port


@pytest.mark.parametrize("text", ['"65536"', "-1", '"80 "', '"+80"', "80.0", '"0x50"', '""'])
def test_bad_ports(text: str) -> None:
    with pytest.raises(ValueProblem, match=r"^expected a port number 0\.\.65535, found "):
        parse_port(parse_source(text, "/f", "/d"))


def test_threads() -> None:
    assert parse_threads(parse_source('"auto"', "/f", "/d")) == (os.cpu_count() or 1)
    assert parse_threads(parse_source('"4"', "/f", "/d")) == 4
    with pytest.raises(ValueProblem, match="expected a whole number >= 1 or 'auto', found '0'"):
        parse_threads(parse_source('"0"', "/f", "/d"))


@pytest.mark.parametrize(("text", "seconds"), [('"5"', 5.0), ("0.25", 0.25), ('"1.5"', 1.5)])
def test_seconds(text: str, seconds: float) -> None:
    assert parse_seconds(parse_source(text, "/f", "/d")) == seconds


@pytest.mark.parametrize("text", ['"inf"', '"nan"', "-1", '"1e3"', '"-2"'])
def test_bad_seconds(text: str) -> None:
    with pytest.raises(ValueProblem, match="expected a number of seconds >= 0"):
        parse_seconds(parse_source(text, "/f", "/d"))


def test_pairs_flatten_objects_in_order_and_keep_duplicates() -> None:
    value = parse_source('[{"a": "1", "b": 2}, {"a": "3"}]', "/f", "/d")
    assert parse_pairs(value) == (("a", "1"), ("b", "2"), ("a", "3"))


def test_pairs_problems_carry_a_path_suffix() -> None:
    with pytest.raises(ValueProblem) as info:
        parse_pairs(parse_source('[{"a": "1"}, {"b": [1]}]', "/f", "/d"))
    assert (info.value.suffix, info.value.message) == ("[1].b", "expected a string, found a list")
    with pytest.raises(ValueProblem) as info:
        parse_pairs(parse_source('[{"a": "1"}, "b"]', "/f", "/d"))
    assert (info.value.suffix, info.value.message) == ("[1]", "expected an object, found a string")


def test_map() -> None:
    assert parse_map(parse_source('{"*": "", ".zip": "application/zip"}', "/f", "/d")) == (
        ("*", ""),
        (".zip", "application/zip"),
    )
