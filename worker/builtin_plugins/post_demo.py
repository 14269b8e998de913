"""`protocol-post-demo` on a `callback://` mount: a form POST is answered with a table of its
fields, as lws's plugin does (urlencoded or multipart; a file shows its name and length)."""

from __future__ import annotations

import email.parser
import email.policy
import html
from dataclasses import dataclass
from email.errors import MessageDefect, MultipartInvariantViolationDefect
from urllib.parse import parse_qsl

from pyws.worker.plugin_api import HTTPExchange, Plugin

MAX_BODY = 1 << 20  # a demo form; lws drops uploads past 100 000 bytes
MAX_FIELDS = 100
_HTML = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
_FORM_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>POST demo</title>'
    b'</head><body><form method="post" enctype="multipart/form-data">'
    b'<input name="text"> <input type="file" name="file"> '
    b'<input type="submit" name="send" value="Send"></form></body></html>\n'
)


class FormError(Exception):
    """The content is not a form we can read: answer `status`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    value: str  # decoded text; empty for a file
    length: int  # bytes of the value (or of the file) as sent
    filename: str | None = None


class _Upload:
    __slots__ = ("chunks", "content_type", "size")

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        self.chunks: list[bytes] = []
        self.size = 0


class PostDemo(Plugin):
    name = "protocol-post-demo"

    def http_request(self, exchange: HTTPExchange) -> None:
        method = exchange.request.method
        if method in (b"GET", b"HEAD"):
            exchange.respond(200, _HTML, _FORM_PAGE)
        elif method != b"POST":
            exchange.respond(405, [("Allow", "GET, HEAD, POST"), *_HTML], b"")
        else:
            exchange.session = _Upload(exchange.header("content-type") or "")

    def http_body(self, exchange: HTTPExchange, chunk: bytes) -> None:
        upload: _Upload | None = exchange.session
        if upload is None:
            return
        upload.size += len(chunk)
        if upload.size > MAX_BODY:
            exchange.session = None
            _error(exchange, 413, f"more than {MAX_BODY} bytes")
            return
        upload.chunks.append(chunk)

    def http_body_complete(self, exchange: HTTPExchange) -> None:
        upload: _Upload | None = exchange.session
        if upload is None:
            return
        exchange.session = None
        try:
            fields = parse_form(upload.content_type, b"".join(upload.chunks))
        except FormError as exc:
            _error(exchange, exc.status, str(exc))
            return
        exchange.respond(200, _HTML, render_table(fields).encode())


def parse_form(content_type: str, body: bytes) -> list[Field]:
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(
                body.decode("utf-8", "replace"),
                keep_blank_values=True,
                errors="replace",
                max_num_fields=MAX_FIELDS,
            )
        except ValueError as exc:
            raise FormError(413, str(exc)) from None
        return [Field(n, v, len(v.encode())) for n, v in pairs]
    if kind == "multipart/form-data":
        return _parse_multipart(content_type, body)
    raise FormError(415, f"not a form: {kind or 'no Content-Type'}")


def _parse_multipart(content_type: str, body: bytes) -> list[Field]:
    """multipart/form-data (RFC 7578) through the stdlib MIME parser."""
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    defects: list[MessageDefect] = list(message.defects)
    if not message.is_multipart() or any(
        not isinstance(d, MultipartInvariantViolationDefect) for d in defects
    ):
        raise FormError(400, "malformed multipart/form-data")
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue  # RFC 7578 §4.2: every part names its field
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields.append(Field(name, "", len(data), filename))
        else:
            fields.append(Field(name, _decode(data, part.get_content_charset()), len(data)))
        if len(fields) > MAX_FIELDS:
            raise FormError(413, "too many fields")
    return fields


def _decode(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def render_table(fields: list[Field]) -> str:
    rows = []
    for field in fields:
        value = html.escape(field.value)
        if field.filename is not None:
            value = f"<i>file</i> {html.escape(field.filename)}"
        rows.append(
            f"<tr><td><b>{html.escape(field.name)}</b></td><td>{field.length}</td>"
            f"<td>{value}</td></tr>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Form results</title></head><body><h1>Form results (after urldecoding)</h1>"
        "<table><tr><td>Name</td><td>Length</td><td>Value</td></tr>"
        + "".join(rows)
        + "</table></body></html>\n"
    )


def _error(exchange: HTTPExchange, status: int, reason: str) -> None:
    body = (
        f"<!DOCTYPE html><html><body><h1>{status}</h1><p>{html.escape(reason)}</p></body></html>\n"
    )
    exchange.respond(status, _HTML, body.encode())
