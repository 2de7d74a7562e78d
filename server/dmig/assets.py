"""Locate the plugin's shipped assets (expertise, workflows, agent prompt).

In a wheel they live in ``dmig/_assets``; in a source checkout (editable install) they are the
top-level folders of the repository. Looking in both keeps one copy of each file.
"""

from __future__ import annotations

from pathlib import Path

from dmig.errors import NotFound

_PKG = Path(__file__).resolve().parent


def asset_path(*parts: str) -> Path:
    for base in (_PKG / "_assets", _PKG.parents[1]):
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise NotFound(f"shipped asset {'/'.join(parts)} is missing from this installation", asset="/".join(parts))


def schema_path(name: str) -> Path:
    """JSON Schemas live inside the package itself (dmig/schemas)."""
    path = _PKG / "schemas" / name
    if not path.exists():
        raise NotFound(f"schema {name} is missing from this installation", schema=name)
    return path
