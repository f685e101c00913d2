"""Frozen dataclasses built from parsed JSON, checked field by field against their annotations.

A field the JSON leaves out (or sets to null where its type has no None) takes its default: files
written before a field existed still read. A field that is there must have its annotated type;
otherwise the error names the file and the field's path (`candidates[0].metrics.accuracy.n`).
Numbers keep the type the file gave them (an int stays an int), so what is shown from them reads
as it always did. Fields annotated `Any` keep the JSON as it is: the schema's open blocks.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from tunewise.errors import TunewiseError

T = TypeVar("T")

_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}


class MalformedField(TunewiseError):
    """A results file field that is missing or has the wrong type."""


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def build(cls: type[T], value: Any, source: str, where: str = "") -> T:
    """An instance of the dataclass `cls` from the JSON object `value`."""
    if not isinstance(value, Mapping):
        raise _wrong(source, where, "an object", value)
    hints = _hints(cls)
    given: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = f"{where}.{f.name}" if where else f.name
        item = value.get(f.name)
        if item is None and (f.name not in value or not _takes_none(hints[f.name])):
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise MalformedField(f"{source}: {path}: missing; it is required")
            continue  # left out, or null where the schema has no null: the default
        given[f.name] = convert(hints[f.name], item, source, path)
    return cls(**given)


def convert(kind: Any, value: Any, source: str, where: str) -> Any:
    """`value` checked (and built) as the annotation `kind`."""
    origin = get_origin(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(kind) if a is not type(None)]
        if value is None:
            return None
        return convert(options[0], value, source, where)
    if dataclasses.is_dataclass(kind):
        return build(kind, value, source, where)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list):
            raise _wrong(source, where, "a list", value)
        item = get_args(kind)[0]
        return tuple(convert(item, v, source, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise _wrong(source, where, "an object", value)
        item = get_args(kind)[1]
        return {str(k): convert(item, v, source, f"{where}.{k}") for k, v in value.items()}
    return _scalar(kind, value, source, where)


def _scalar(kind: type, value: Any, source: str, where: str) -> Any:
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise _wrong(source, where, _NAMES.get(kind, kind.__name__), value)
    return value


def _takes_none(kind: Any) -> bool:
    return kind is Any or (
        get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind)
    )


def _wrong(source: str, where: str, expected: str, value: Any) -> MalformedField:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return MalformedField(f"{source}: {where or '(top level)'}: expected {expected}, got {shown}")
