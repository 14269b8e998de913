"""Compile the worker's per-request modules to C extensions with mypyc, in place.

    python tools/native.py build     # .so files beside the sources they compile
    python tools/native.py stale     # exit 1, naming them, if a source changed since
    python tools/native.py clean     # remove them: the worker runs as pure Python

Why: a CGI or static request runs a few thousand bytecodes of pyws's own code, and on two
cores that Python competes with the scripts for CPU. mypyc turns the modules every request
passes through into C that calls attributes and methods directly; callgrind counted 38%
fewer instructions per CGI request from compiling alone (302k to 187k). The code stays
plain, type-checked Python: mypyc comes with mypy, which the project already uses, and a
module that is not compiled (or a build that was cleaned) imports and runs the same.

The modules compile as one group, so calls between them skip the interpreter; the group's
shared library goes into pyws.worker, not onto the top level of sys.path.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parent.parent
STAGE = REPO / "build" / "native"  # pyws/ here links to the repo folders: mypyc sees pyws.*
GROUP = "pyws.worker.native"  # its library: worker/native__mypyc.*.so
STAMP = REPO / ".venv" / ".native"  # the Makefile's: gone after a clean, so make rebuilds

# What one request runs through, from the socket to the CGI pipes. Not the static origin:
# its tests patch its module constants, and it has not been measured compiled.
MODULES = (
    "worker/http/connection.py",
    "worker/http/events.py",
    "worker/http/protocol.py",
    "worker/http/response.py",
    "worker/http/dates.py",
    "worker/cgi/lifecycle.py",
    "worker/cgi/headers.py",
    "worker/cgi/environ.py",
    "worker/cgi/process.py",
    "worker/cgi/pipes.py",
    "worker/cgi/origin.py",
    "worker/cgi/stderr.py",
    "worker/exchange.py",
    "worker/deadline.py",
    "worker/looplocal.py",
    "worker/dispatch.py",
    "worker/routing.py",
    "worker/server.py",
)
# Hand-written C, each beside the module that falls back to Python without it.
C_MODULES = ("worker/cgi/_spawn.c",)


def built() -> list[Path]:
    """The extension modules a build left in the source tree."""
    found = [p for m in MODULES + C_MODULES for p in _extensions_of(m)]
    return found + list((REPO / "worker").glob("native__mypyc.*.so"))


def stale() -> list[str]:
    """Sources newer than the build: compiled code would shadow the edit."""
    extensions = built()
    if not extensions:
        return []  # nothing compiled: everything runs from source
    oldest = min(p.stat().st_mtime for p in extensions)
    sources = MODULES + C_MODULES
    missing = [m for m in sources if not _extensions_of(m)]
    return missing + [m for m in sources if (REPO / m).stat().st_mtime > oldest]


def _extensions_of(source: str) -> list[Path]:
    return list((REPO / source).parent.glob(Path(source).stem + ".*.so"))


def clean() -> None:
    for path in built():
        path.unlink()
    shutil.rmtree(STAGE, ignore_errors=True)
    STAMP.unlink(missing_ok=True)


def build() -> None:
    from mypyc.build import mypycify  # build-time only: the worker never imports mypyc
    from setuptools import Extension, setup

    clean()
    (STAGE / "pyws").mkdir(parents=True)
    for name in ("worker", "supervisor"):
        (STAGE / "pyws" / name).symlink_to(REPO / name, target_is_directory=True)
    os.chdir(STAGE)
    paths = ["--config-file", str(REPO / "pyproject.toml")]
    paths += ["pyws/" + m for m in MODULES]
    # With setuptools imported first, mypycify makes setuptools' Extension.
    extensions = cast(
        "list[Extension]", mypycify(paths, opt_level="3", group_name=GROUP, target_dir="c")
    )
    for source in C_MODULES:
        module = "pyws." + source.removesuffix(".c").replace("/", ".")
        flags = ["-O2", "-Wall", "-Wextra"]
        extensions.append(Extension(module, ["pyws/" + source], extra_compile_args=flags))
    # --inplace writes each module through the links, beside its source.
    setup(
        name="pyws-native",
        ext_modules=extensions,
        script_args=["-q", "build_ext", "--inplace", "--build-temp", "temp", "-j", "2"],
    )
    left = stale()
    if left:
        sys.exit(f"native build left these uncompiled or stale: {', '.join(left)}")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "build":
        build()
    elif command == "clean":
        clean()
    elif command == "stale":
        left = stale()
        if left:
            sys.exit(f"compiled modules are older than: {', '.join(left)}; run `make native`")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
