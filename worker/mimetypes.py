"""File suffix to Content-Type: a mount's extra-mimetypes, then lwsws's canned table, then "*"."""

from __future__ import annotations

from collections.abc import Iterable

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
    """One mount's suffix table. `lookup()` gives None for "refuse" and "" for "no Content-Type"."""

    __slots__ = ("_fallback", "_suffixes")

    def __init__(self, extra: Iterable[tuple[str, str]] = ()) -> None:
        suffixes: list[tuple[str, str]] = []
        fallback: str | None = None
        for suffix, mimetype in extra:
            if suffix.startswith("*"):
                # lwsws: `"*": ""` serves any file, without a type when none is known.
                if fallback is None:
                    fallback = mimetype
                continue
            suffixes.append((suffix.lower(), mimetype))
        suffixes.extend(BUILTIN)
        self._suffixes = tuple(suffixes)
        self._fallback = fallback

    def lookup(self, filename: str) -> str | None:
        """The Content-Type for `filename`, matching suffixes without regard to case."""
        name = filename.lower()
        for suffix, mimetype in self._suffixes:
            if len(name) > len(suffix) and name.endswith(suffix):
                return mimetype
        return self._fallback
