"""Files that ship with AutoNAD (search spaces, supernets, latency tables, recipes).

They live in the top-level folders of the source tree and inside the installed package
(`autonad.<kind>`); anywhere a name is accepted, a path to the user's own file works too.
"""

from __future__ import annotations

from pathlib import Path

from autonad.errors import AutoNADError

KINDS = ("search_spaces", "supernets", "latency_tables", "recipes")


def shipped_dir(kind: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}")
    package = Path(__file__).resolve().parent
    installed = package / kind  # a wheel install maps the folders into the package
    return installed if installed.is_dir() else package.parent / kind  # source checkout


def list_shipped(kind: str) -> list[str]:
    return sorted(p.stem for p in shipped_dir(kind).glob("*.yaml"))


def resolve(kind: str, name_or_path: str | Path) -> Path:
    """A shipped file by name (`demo`, `jetson-xavier-nx`) or the user's file by path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in text or path.is_file():
        if not path.is_file():
            raise AutoNADError(f"{path}: file not found")
        return path
    shipped = shipped_dir(kind) / f"{text}.yaml"
    if shipped.is_file():
        return shipped
    available = ", ".join(list_shipped(kind)) or "none"
    label = kind.replace("_", " ").rstrip("s")
    raise AutoNADError(f"unknown {label} '{text}' (available: {available}; or give a path to a .yaml file)")
