"""The installed package list matches the folders on disk."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def source_packages() -> set[str]:
    found = set()
    for folder, prefix in (("supervisor", "pyws.supervisor"), ("worker", "pyws.worker")):
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([prefix, *rel.parts]))
    return found


def test_package_list_matches_folders() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    assert set(setuptools["packages"]) == source_packages()
    assert setuptools["package-dir"] == {"pyws.supervisor": "supervisor", "pyws.worker": "worker"}
    # supervisord owns the top-level name `supervisor`.
    assert not any(p.split(".")[0] != "pyws" for p in setuptools["packages"])


def test_installed_as_pyws_namespace() -> None:
    import pyws.supervisor
    import pyws.worker

    assert Path(pyws.supervisor.__file__).parent == ROOT / "supervisor"
    assert Path(pyws.worker.__file__).parent == ROOT / "worker"
