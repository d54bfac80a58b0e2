"""Typed configuration: dataclasses loaded from YAML with strict key and type checks.

Every YAML file the user can touch (recipes, supernet definitions, search spaces,
architectures) is parsed through `from_mapping`, so a misspelt key or a wrong type is
reported as one line naming the file and the key instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import yaml

from autonad.errors import AutoNADError

T = TypeVar("T")


def load_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file, turning I/O and syntax problems into one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise AutoNADError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_LOADER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise AutoNADError(f"{path}: not valid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AutoNADError(f"{path}: cannot read ({e.__class__.__name__})") from None


def load_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file that must hold a mapping (run files such as summary.yaml and run.yaml)."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise AutoNADError(f"{path}: expected a mapping of keys, found {type(data).__name__}")
    return data


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: latency tables are big
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml_text(data: Any, flow: bool | None = None) -> str:
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=False, default_flow_style=flow, width=1000)


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file so a reader (or a kill -9) never leaves it half-written: temp file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def dump_yaml(data: Any, path: str | os.PathLike) -> None:
    write_text_atomic(path, dump_yaml_text(data))


def merge_mappings(base: dict, override: dict) -> dict:
    """`override` laid over `base`: nested mappings merge key by key, any other value (lists too) replaces."""
    merged = dict(base)
    for key, value in override.items():
        inherited = base.get(key)
        both = isinstance(value, dict) and isinstance(inherited, dict)
        merged[key] = merge_mappings(inherited, value) if both else value
    return merged


def to_mapping(obj: Any) -> Any:
    """Dataclass -> plain dicts/lists/scalars (tuples become lists), for YAML/JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from `data`; `where` names the source in error messages."""
    return _convert(cls, data, where)


def load_dataclass(cls: type[T], path: str | os.PathLike) -> T:
    return from_mapping(cls, load_yaml(path), str(path))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except AutoNADError as e:
                errors.append(str(e))
        raise AutoNADError(errors[0] if len(errors) == 1 else f"{where}: unexpected value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise AutoNADError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise AutoNADError(f"{where}: expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise AutoNADError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise AutoNADError(f"{where}: expected a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        return {_convert(kt, k, where): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    return _convert_scalar(tp, value, where)


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp in (float, int, bool, str):
        raise AutoNADError(f"{where}: expected {tp.__name__}, got {value!r}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _convert_dataclass(cls: Any, value: Any, where: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise AutoNADError(f"{where}: expected a mapping for {cls.__name__}, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in value if k not in fields]
    if unknown:
        known = ", ".join(fields)
        raise AutoNADError(f"{where}: unknown key '{unknown[0]}' (known keys: {known})")
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], f"{where}.{name}" if where else name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise AutoNADError(f"{where}: missing required key '{name}'")
    try:
        return cls(**kwargs)
    except (ValueError, AutoNADError) as e:
        msg = str(e)
        raise AutoNADError(msg if msg.startswith(where) else f"{where}: {msg}") from None
