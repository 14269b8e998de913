"""File suffix to Content-Type: a mount's extra-mimetypes, then lwsws's canned table, then "*"."""

from __future__ import annotations

from collections.abc import Iterable

from pyws.worker.http.response import serialize_fields

# The table lwsws serves from (libwebsockets lib/roles/http/server/server.c, lws_get_mimetype),
# kept as is, odd font types included. Anything else needs the mount's `extra-mimetypes`: an
# unknown suffix is refused, so a path mistake cannot serve, say, /etc/passwd.
BUILTIN: tuple[tuple[str, str], ...] = (
    (".html", "text/html"),
    (".htm", "text/html"),
    (".js", "text/javascript"),
    (".css", "text/css"),
    (".png", "image/png"),
    (".jpg", "image/jpeg"),
    (".jpeg", "image/jpeg"),
    (".ico", "image/x-icon"),
    (".gif", "image/gif"),
    (".svg", "image/svg+xml"),
    (".ttf", "application/x-font-ttf"),
    (".otf", "application/font-woff"),
    (".woff", "application/font-woff"),
    (".woff2", "application/font-woff2"),
    (".gz", "application/gzip"),
    (".txt", "text/plain"),
    (".xml", "application/xml"),
    (".json", "application/json"),
)


class MimeTypes:
    """One mount's suffix table. `lookup()` gives None for "refuse" and "" for "no Content-Type".

    As lws_get_mimetype does: the mount's `extra-mimetypes` first, so they override the canned
    table, then the canned table, then a `"*"` entry (any key starting with "*") if there is
    one. A suffix is matched as written (".zip", or "zip" without the dot), without regard to
    case, against the end of the whole path, which must be longer than it. Where two extra
    suffixes both match ("x.tar.gz" with ".gz" and ".tar.gz"), the longer one wins: lws would
    take the later one in the config, which leaves the choice to the order of a JSON object.
    Of several "*" entries the last counts, as in lws.
    """

    __slots__ = ("_fallback", "_lines", "_suffixes")

    def __init__(self, extra: Iterable[tuple[str, str]] = ()) -> None:
        suffixes: list[tuple[str, str]] = []
        fallback: str | None = None
        for suffix, mimetype in extra:
            if suffix.startswith("*"):
                fallback = mimetype  # lwsws: `"*": ""` serves any file, typeless if unknown
            else:
                suffixes.append((suffix.lower(), mimetype))
        suffixes.sort(key=lambda pair: len(pair[0]), reverse=True)  # stable: ties keep order
        self._suffixes = (*suffixes, *BUILTIN)
        self._fallback = fallback
        # Serialised once, so a bad value (a CR or LF) fails at set-up, not on a request.
        types = {mimetype for _, mimetype in self._suffixes} | {fallback or ""}
        self._lines = {t: serialize_fields((("Content-Type", t),)) if t else b"" for t in types}

    def lookup(self, path: str) -> str | None:
        """The Content-Type for the file at `path`."""
        name = path.lower()
        for suffix, mimetype in self._suffixes:
            if len(name) > len(suffix) and name.endswith(suffix):
                return mimetype
        return self._fallback

    def field(self, path: str) -> bytes | None:
        """The serialised `Content-Type` line for `path`: b"" for none, None to refuse it."""
        mimetype = self.lookup(path)
        return None if mimetype is None else self._lines[mimetype]
