"""Imports a worker needs later, done while it can still read the interpreter's files.

After the privilege drop the worker may not be able to read the standard
library (on this machine it lives under /root), so nothing may be imported lazily.
"""

from __future__ import annotations

import importlib

# Modules the stdlib imports on first use rather than at start-up.
LAZY_MODULES = (
    "encodings.idna",
    "encodings.latin_1",
    "encodings.ascii",
    "encodings.utf_8",
    "email.utils",
    "hashlib",
    "hmac",
    "mimetypes",
    "urllib.parse",
    "concurrent.futures",
    "concurrent.futures.thread",
    "asyncio.sslproto",
    "ssl",
)


def preload_lazy_modules() -> None:
    for name in LAZY_MODULES:
        importlib.import_module(name)
