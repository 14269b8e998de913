"""Conditional requests (RFC 9110 §13) and byte ranges (RFC 9110 §14) on a representation."""

from __future__ import annotations

from pyws.worker.http.dates import parse_http_date
from pyws.worker.http.events import Request

# More range-specs than this and the Range field is ignored (a 200 with the whole file):
# RFC 9110 §14.2 and §17.15 let a server refuse many small ranges, the shape of a DoS.
MAX_RANGES = 16
# A position longer than this many digits is past any file; int() of a huge digit string is
# slow (and refused by Python beyond 4300 digits), so it is capped before conversion.
_MAX_DIGITS = 18
_FAR = 10**_MAX_DIGITS

Span = tuple[int, int]  # inclusive (first, last) byte positions
# A byte-range-spec: (first, last); first None: a suffix-range of `last` bytes; last None: to
# the end of the representation.
RangeSpec = tuple[int | None, int | None]


class RangeNotSatisfiable(Exception):
    """Answer 416 with `Content-Range: bytes */size` (RFC 9110 §15.5.17)."""


def evaluate_preconditions(request: Request, etag: bytes, last_modified: int) -> int:
    """0 to carry on, else 412 or 304, in the evaluation order of RFC 9110 §13.2.2."""
    if_match = _list_field(request, b"if-match")
    if if_match is not None:
        if not _etag_matches(if_match, etag, weak=False):  # §13.1.1: strong comparison
            return 412
    else:
        since = _date(request, b"if-unmodified-since")
        if since is not None and last_modified > since:
            return 412
    if_none_match = _list_field(request, b"if-none-match")
    if if_none_match is not None:
        if _etag_matches(if_none_match, etag, weak=True):  # §13.1.2: weak comparison
            return 304 if request.method in (b"GET", b"HEAD") else 412
    elif request.method in (b"GET", b"HEAD"):
        since = _date(request, b"if-modified-since")  # §13.1.3: only without If-None-Match
        if since is not None and last_modified <= since:
            return 304
    return 0


def select_ranges(
    request: Request,
    size: int,
    etag: bytes,
    last_modified: int,
    *,
    date_is_strong: bool = True,
) -> tuple[Span, ...] | None:
    """The byte ranges to send, ascending and coalesced, or None for the whole representation.

    None when there is no Range field, the method is not GET (§14.2: HEAD ignores it), a stale
    If-Range (§13.1.5), a unit other than bytes, a syntax error or an invalid range-spec, or
    more than MAX_RANGES range-specs: RFC 9110 §14.2 lets a server ignore all of those.
    Overlapping and adjacent ranges are merged and the parts come in file order (§15.3.7.2
    allows both), so a client cannot make us send a byte twice. Raises RangeNotSatisfiable
    when no range-spec overlaps the representation (§14.1.2).

    `date_is_strong`: whether Last-Modified may serve as a strong validator (§8.8.2.2); an
    If-Range date never holds otherwise.
    """
    value = request.header(b"range")
    if value is None or request.method != b"GET":
        return None
    if_range = request.header(b"if-range")
    if if_range is not None and not _if_range_holds(
        if_range.strip(), etag, last_modified, date_is_strong
    ):
        return None
    specs = parse_range_field(value)
    if specs is None:
        return None
    return resolve_ranges(specs, size)


def parse_range_field(value: bytes) -> list[RangeSpec] | None:
    """The byte-range-specs of a Range value, or None if the field is to be ignored: another
    unit, a syntax error, an invalid spec or too many of them (RFC 9110 §14.1.1, §14.2)."""
    unit, equals, range_set = value.partition(b"=")
    if not equals or unit.strip().lower() != b"bytes":
        return None
    specs: list[RangeSpec] = []
    for element in range_set.split(b","):
        text = element.strip(b" \t")
        if not text:
            continue  # empty list elements are allowed (RFC 9110 §5.6.1)
        spec = _parse_spec(text)
        if spec is None or len(specs) == MAX_RANGES:
            return None
        specs.append(spec)
    return specs or None


def _parse_spec(text: bytes) -> RangeSpec | None:
    first_text, dash, last_text = text.partition(b"-")
    first_text, last_text = first_text.strip(b" \t"), last_text.strip(b" \t")
    if not dash or not (first_text or last_text):
        return None
    if (first_text and not first_text.isdigit()) or (last_text and not last_text.isdigit()):
        return None
    first = _position(first_text) if first_text else None
    last = _position(last_text) if last_text else None
    if first is not None and last is not None and last < first:
        return None  # an invalid byte-range-spec (§14.1.1)
    return first, last


def resolve_ranges(
    specs: list[tuple[int | None, int | None]], size: int
) -> tuple[Span, ...] | None:
    """The satisfiable specs as spans inside `size` bytes, sorted and coalesced (§14.1.2)."""
    spans: list[Span] = []
    for first, last in specs:
        if first is None:
            assert last is not None  # a suffix-range always has its length
            if last and size:
                spans.append((max(0, size - last), size - 1))
        elif first < size:
            spans.append((first, size - 1 if last is None else min(last, size - 1)))
    if not spans:
        if size == 0 and any(first is None and last for first, last in specs):
            # §14.1.2 calls this satisfiable, yet there is no byte to send: the empty 200.
            return None
        raise RangeNotSatisfiable
    spans.sort()
    merged = [spans[0]]
    for first, last in spans[1:]:
        top_first, top_last = merged[-1]
        if first <= top_last + 1:
            merged[-1] = (top_first, max(top_last, last))
        else:
            merged.append((first, last))
    return tuple(merged)


def _position(digits: bytes) -> int:
    return _FAR if len(digits) > _MAX_DIGITS else int(digits)


def _if_range_holds(value: bytes, etag: bytes, last_modified: int, date_is_strong: bool) -> bool:
    # §13.1.5: a DQUOTE (or W/) starts an entity-tag, compared strongly: a weak one never holds.
    if value.startswith(b'"'):
        return value == etag
    if value.startswith(b"W/"):
        return False
    return date_is_strong and parse_http_date(value) == last_modified


def _etag_matches(field: bytes, etag: bytes, *, weak: bool) -> bool:
    """Does `etag` (ours, strong) match `*` or a member of the entity-tag list in `field`?

    An opaque-tag may hold commas (RFC 9110 §8.8.3), so the list is read tag by tag rather
    than split on commas; a malformed list matches nothing from the first bad member on.
    """
    field = field.strip(b" \t")
    if field == b"*":
        return True
    pos, end = 0, len(field)
    while pos < end:
        if field[pos] in b" \t,":
            pos += 1
            continue
        is_weak = field.startswith(b"W/", pos)
        if is_weak:
            pos += 2
        if not field.startswith(b'"', pos):
            return False
        close = field.find(b'"', pos + 1)
        if close < 0:
            return False
        if field[pos : close + 1] == etag and (weak or not is_weak):
            return True
        pos = close + 1
    return False


def _list_field(request: Request, name: bytes) -> bytes | None:
    """All lines of a list-based field, joined as one value (RFC 9110 §5.3)."""
    values = [value for key, value in request.headers if key == name]
    if not values:
        return None
    return values[0] if len(values) == 1 else b", ".join(values)


def _date(request: Request, name: bytes) -> int | None:
    value = request.header(name)
    return None if value is None else parse_http_date(value)
