"""Value kinds of lwsws config keys, and the checks that turn a parsed node into a typed value.

lwsws reads every scalar as text, so "7681" and 7681 mean the same; the kinds below keep that
leniency but refuse anything a user could not have meant.
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Callable

from pyws.supervisor.config.model import Location
from pyws.supervisor.config.source import (
    ArrayNode,
    BoolNode,
    Key,
    Node,
    NumberNode,
    ObjectNode,
    StringNode,
    describe,
)


class Kind(enum.Enum):
    TEXT = "text"
    PORT = "port"
    COUNT = "count"  # a whole number >= 0
    FLAGS = "flags"  # decimal OpenSSL option bits
    THREADS = "threads"  # "auto" or a whole number >= 1
    SECONDS = "seconds"
    BOOL = "bool"
    PAIRS = "pairs"  # [{"name": "value", ...}, ...]
    HEADERS = "headers"  # PAIRS whose names are HTTP field names
    MAP = "map"  # {"name": "value", ...}
    REJECTS = "rejects"  # [{"keyword": "404 Not Found"}]
    LIST = "list"  # items checked by the caller (mounts, ws-protocols)


class ValueProblem(Exception):
    """A value of the wrong kind; `suffix` extends the key path into the value (`[0].name`)."""

    def __init__(self, location: Location, message: str, suffix: str = "") -> None:
        super().__init__(message)
        self.location = location
        self.message = message
        self.suffix = suffix


_TRUE = frozenset({"1", "on", "yes", "true"})
_FALSE = frozenset({"0", "off", "no", "false"})
BOOL_SPELLINGS = "1/0, on/off, yes/no, true/false"
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_STATUS = re.compile(r"([1-5][0-9][0-9])(?: (.*))?")


def shown(node: Node) -> str:
    """The node as an error message quotes it: scalars by value, containers by type."""
    if isinstance(node, StringNode):
        return repr(node.value)
    if isinstance(node, NumberNode):
        return node.text
    return describe(node)


def parse_text(node: Node) -> str:
    if isinstance(node, StringNode):
        return node.value
    if isinstance(node, NumberNode):
        return node.text
    raise ValueProblem(node.location, f"expected a string, found {describe(node)}")


def parse_whole(node: Node, what: str, low: int = 0, high: int | None = None) -> int:
    """A whole number in `low..high`, written as a JSON number or as decimal digits."""
    number: int | None = None
    if isinstance(node, NumberNode) and isinstance(node.value, int):
        number = node.value
    elif isinstance(node, StringNode) and _WHOLE.fullmatch(node.value):
        number = int(node.value)
    if number is None or number < low or (high is not None and number > high):
        raise ValueProblem(node.location, f"expected {what}, found {shown(node)}")
    return number


def parse_port(node: Node) -> int:
    return parse_whole(node, "a port number 0..65535", 0, 65535)


def parse_count(node: Node) -> int:
    return parse_whole(node, "a whole number >= 0")


def parse_threads(node: Node) -> int:
    if isinstance(node, StringNode) and node.value.lower() == "auto":
        return os.cpu_count() or 1
    return parse_whole(node, "a whole number >= 1 or 'auto'", 1)


def parse_seconds(node: Node) -> float:
    seconds: float | None = None
    if isinstance(node, NumberNode) or (
        isinstance(node, StringNode) and _DECIMAL.fullmatch(node.value)
    ):
        seconds = float(node.value)
    if seconds is None or seconds < 0 or not math.isfinite(seconds):
        raise ValueProblem(node.location, f"expected a number of seconds >= 0, found {shown(node)}")
    return seconds


def parse_bool(node: Node) -> bool:
    if isinstance(node, BoolNode):
        return node.value
    if isinstance(node, StringNode | NumberNode):
        text = parse_text(node).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueProblem(node.location, f"expected a boolean ({BOOL_SPELLINGS}), found {shown(node)}")


def parse_map(node: Node) -> tuple[tuple[str, str], ...]:
    if not isinstance(node, ObjectNode):
        raise ValueProblem(node.location, f"expected an object, found {describe(node)}")
    return tuple((key.name, _member_text(key, value, "")) for key, value in node.members)


def _member_text(key: Key, value: Node, prefix: str) -> str:
    try:
        return parse_text(value)
    except ValueProblem as exc:
        raise ValueProblem(exc.location, exc.message, f"{prefix}.{key.name}") from None


def _pair_members(node: Node) -> list[tuple[Key, Node, str]]:
    """The members of `[{"a": "1"}, {"b": "2"}]` in order, each with its path suffix."""
    if not isinstance(node, ArrayNode):
        raise ValueProblem(node.location, f"expected a list of objects, found {describe(node)}")
    members: list[tuple[Key, Node, str]] = []
    for index, item in enumerate(node.items):
        if not isinstance(item, ObjectNode):
            message = f"expected an object, found {describe(item)}"
            raise ValueProblem(item.location, message, f"[{index}]")
        members.extend((key, value, f"[{index}]") for key, value in item.members)
    return members


def parse_pairs(node: Node) -> tuple[tuple[str, str], ...]:
    return tuple(
        (key.name, _member_text(key, value, prefix)) for key, value, prefix in _pair_members(node)
    )


def parse_headers(node: Node) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for key, value, prefix in _pair_members(node):
        text = _member_text(key, value, prefix)
        if not _TOKEN.fullmatch(key.name):
            message = f"{key.name!r} is not a valid HTTP header name"
            raise ValueProblem(key.location, message, f"{prefix}.{key.name}")
        if "\r" in text or "\n" in text:
            message = "a header value cannot hold a line break"
            raise ValueProblem(value.location, message, f"{prefix}.{key.name}")
        pairs.append((key.name, text))
    return tuple(pairs)


def parse_rejects(node: Node) -> tuple[tuple[str, int, str], ...]:
    """`[{"scumbot": "404 Not Found"}]`: user-agent keyword -> status line to answer with."""
    rejects: list[tuple[str, int, str]] = []
    for key, value, prefix in _pair_members(node):
        text = _member_text(key, value, prefix)
        match = _STATUS.fullmatch(text)
        if match is None:
            message = f"expected an HTTP status like '404 Not Found', found {text!r}"
            raise ValueProblem(value.location, message, f"{prefix}.{key.name}")
        rejects.append((key.name, int(match.group(1)), match.group(2) or ""))
    return tuple(rejects)


def parse_list(node: Node) -> tuple[Node, ...]:
    if not isinstance(node, ArrayNode):
        raise ValueProblem(node.location, f"expected a list, found {describe(node)}")
    return node.items


PARSERS: dict[Kind, Callable[[Node], object]] = {
    Kind.TEXT: parse_text,
    Kind.PORT: parse_port,
    Kind.COUNT: parse_count,
    Kind.FLAGS: parse_count,
    Kind.THREADS: parse_threads,
    Kind.SECONDS: parse_seconds,
    Kind.BOOL: parse_bool,
    Kind.PAIRS: parse_pairs,
    Kind.HEADERS: parse_headers,
    Kind.MAP: parse_map,
    Kind.REJECTS: parse_rejects,
    Kind.LIST: parse_list,
}
