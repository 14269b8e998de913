"""The lwsws JSON dialect: JSON plus `#` comments, parsed into nodes that remember their place.

Call `parse_source(text, file, data_dir)`; it returns the top-level node or raises `SourceError`.
Objects keep every member in order, duplicates included, because lwsws lets some keys repeat
(`filespath` in a pvo, `ssl-option-set` in a vhost).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pyws.supervisor.config.model import Location

DATA_DIR_TOKEN = "_lws_ddir_"

# RFC 8259 section 6; a leading "+" or "0" prefix is not JSON.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[^\s,:\[\]{}\"#]+")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_MAX_DEPTH = 100


@dataclass(frozen=True, slots=True)
class StringNode:
    value: str
    location: Location


@dataclass(frozen=True, slots=True)
class NumberNode:
    value: int | float
    text: str  # as written, so "5000" stays "5000" when a pvo wants a string
    location: Location


@dataclass(frozen=True, slots=True)
class BoolNode:
    value: bool
    location: Location


@dataclass(frozen=True, slots=True)
class NullNode:
    location: Location


@dataclass(frozen=True, slots=True)
class ArrayNode:
    items: tuple[Node, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    location: Location


@dataclass(frozen=True, slots=True)
class ObjectNode:
    members: tuple[tuple[Key, Node], ...]
    location: Location

    def get(self, name: str) -> Node | None:
        """The last value given for `name` (later members override earlier ones)."""
        found: Node | None = None
        for key, value in self.members:
            if key.name == name:
                found = value
        return found


Node = StringNode | NumberNode | BoolNode | NullNode | ArrayNode | ObjectNode


def describe(node: Node) -> str:
    """Name a node's type the way an error message wants it ("a list", "null")."""
    match node:
        case StringNode():
            return "a string"
        case NumberNode():
            return "a number"
        case BoolNode():
            return "true" if node.value else "false"
        case NullNode():
            return "null"
        case ArrayNode():
            return "a list"
        case ObjectNode():
            return "an object"


class SourceError(Exception):
    """A syntax error: the file cannot be read as lwsws JSON past `location`."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location.file}:{location.line}:{location.col}: {message}")
        self.location = location
        self.message = message


def parse_source(text: str, file: str, data_dir: str) -> Node:
    """Parse one config file; `_lws_ddir_` in string values becomes `data_dir`."""
    parser = _Parser(text, file, data_dir)
    parser.skip_space()
    value = parser.parse_value(0)
    parser.skip_space()
    if parser.pos < len(text):
        raise parser.error(f"unexpected {parser.found()} after the end of the top-level value")
    return value


class _Parser:
    """Recursive descent over `text`; newlines only occur between tokens, so the line is cheap."""

    def __init__(self, text: str, file: str, data_dir: str) -> None:
        self.text = text
        self.file = file
        self.data_dir = data_dir
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def location(self, pos: int | None = None) -> Location:
        at = self.pos if pos is None else pos
        return Location(self.file, self.line, at - self.line_start + 1)

    def error(self, message: str, pos: int | None = None) -> SourceError:
        return SourceError(self.location(pos), message)

    def found(self) -> str:
        if self.pos >= len(self.text):
            return "end of file"
        if self.text[self.pos] == '"':
            return "a string"
        word = _WORD.match(self.text, self.pos)
        return repr(word.group() if word else self.text[self.pos])

    def skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\n":
                self.pos += 1
                self.line += 1
                self.line_start = self.pos
            elif char in " \t\r":
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse_value(self, depth: int) -> Node:
        if depth > _MAX_DEPTH:
            raise self.error(f"nesting deeper than {_MAX_DEPTH} levels")
        char = self.peek()
        if char == "{":
            return self.parse_object(depth)
        if char == "[":
            return self.parse_array(depth)
        if char == '"':
            value, location = self.take_string()
            return StringNode(value.replace(DATA_DIR_TOKEN, self.data_dir), location)
        return self.parse_scalar()

    def parse_scalar(self) -> Node:
        """A literal or number: the whole word must be one, so `trueish` and `01` are refused."""
        start = self.location()
        word = _WORD.match(self.text, self.pos)
        text = word.group() if word else ""
        node: Node | None = None
        if text == "null":
            node = NullNode(start)
        elif text in ("true", "false"):
            node = BoolNode(text == "true", start)
        elif (number := _NUMBER.fullmatch(text)) is not None:
            node = _number_node(number, start)
        if node is None:
            hint = " (strings use double quotes)" if text.startswith("'") else ""
            raise self.error(f"expected a value, found {self.found()}{hint}")
        self.pos += len(text)
        return node

    def take_string(self) -> tuple[str, Location]:
        """Consume the string whose opening quote is at `pos`; return it and where it starts."""
        location = self.location()
        value, self.pos = self.scan_string(self.pos)
        return value, location

    def scan_string(self, start: int) -> tuple[str, int]:
        """Decode the string whose opening quote is at `start`; return it and the index after."""
        parts: list[str] = []
        pos = start + 1
        text = self.text
        while True:
            end = _next_special(text, pos)
            parts.append(text[pos:end])
            if end >= len(text) or text[end] == "\n":
                raise self.error("unterminated string", start)
            char = text[end]
            if char == '"':
                return "".join(parts), end + 1
            if char == "\\":
                decoded, pos = self.parse_escape(end)
                parts.append(decoded)
            else:
                raise self.error(f"control character U+{ord(char):04X} in a string", end)

    def parse_escape(self, pos: int) -> tuple[str, int]:
        """Decode the escape starting at the backslash at `pos`; return it and the next index."""
        code = self.text[pos + 1 : pos + 2]
        if code in _ESCAPES:
            return _ESCAPES[code], pos + 2
        if code != "u":
            raise self.error(f"invalid escape '\\{code}' in a string", pos)
        high = self.parse_hex(pos)
        if not 0xD800 <= high <= 0xDFFF:
            return chr(high), pos + 6
        if high <= 0xDBFF and self.text.startswith("\\u", pos + 6):
            low = self.parse_hex(pos + 6)
            if 0xDC00 <= low <= 0xDFFF:
                return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), pos + 12
        raise self.error(f"unpaired surrogate '\\u{high:04X}' in a string", pos)

    def parse_hex(self, pos: int) -> int:
        digits = self.text[pos + 2 : pos + 6]
        if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.error("'\\u' must be followed by four hex digits", pos)
        return int(digits, 16)

    def parse_object(self, depth: int) -> ObjectNode:
        start = self.location()
        self.pos += 1
        members: list[tuple[Key, Node]] = []
        self.skip_space()
        if self.peek() == "}":
            self.pos += 1
            return ObjectNode((), start)
        while True:
            members.append(self.parse_member(depth, start, after_comma=bool(members)))
            self.skip_space()
            char = self.peek()
            self.pos += 1
            if char == "}":
                return ObjectNode(tuple(members), start)
            if char != ",":
                self.pos -= 1
                raise self.error(
                    f"expected ',' or '}}', found {self.found()}{self.unclosed(start)}"
                )
            self.skip_space()

    def parse_member(self, depth: int, start: Location, *, after_comma: bool) -> tuple[Key, Node]:
        if self.peek() != '"':
            trailing = " (no comma after the last member)" if self.peek() == "}" else ""
            expected = "a string key" if after_comma else "a string key or '}'"
            raise self.error(
                f"expected {expected}, found {self.found()}{trailing}{self.unclosed(start)}"
            )
        name, location = self.take_string()
        self.skip_space()
        if self.peek() != ":":
            raise self.error(f"expected ':' after key '{name}', found {self.found()}")
        self.pos += 1
        self.skip_space()
        return Key(name, location), self.parse_value(depth + 1)

    def parse_array(self, depth: int) -> ArrayNode:
        start = self.location()
        self.pos += 1
        items: list[Node] = []
        self.skip_space()
        if self.peek() == "]":
            self.pos += 1
            return ArrayNode((), start)
        while True:
            if items and self.peek() == "]":
                raise self.error("expected a value, found ']' (no comma after the last item)")
            items.append(self.parse_value(depth + 1))
            self.skip_space()
            char = self.peek()
            self.pos += 1
            if char == "]":
                return ArrayNode(tuple(items), start)
            if char != ",":
                self.pos -= 1
                raise self.error(f"expected ',' or ']', found {self.found()}{self.unclosed(start)}")
            self.skip_space()

    def unclosed(self, start: Location) -> str:
        if self.pos < len(self.text):
            return ""
        return f" (the one opened at {start.line}:{start.col} is never closed)"


def _number_node(match: re.Match[str], start: Location) -> NumberNode:
    text = match.group()
    if match.group(1) is None and match.group(2) is None:
        return NumberNode(int(text), text, start)
    number = float(text)
    if math.isinf(number):
        raise SourceError(start, f"number {text} is out of range")
    return NumberNode(number, text, start)


def _next_special(text: str, pos: int) -> int:
    """Index of the next quote, backslash or control character at or after `pos`."""
    match = _SPECIAL.search(text, pos)
    return match.start() if match else len(text)


_SPECIAL = re.compile(r'["\\\x00-\x1f]')
