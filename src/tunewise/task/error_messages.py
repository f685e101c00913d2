"""Task-file errors a user can act on: pydantic's first error as one line naming the file, the
line, the key as written, and the keys allowed there."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError


def explain(
    path: Path,
    exc: ValidationError,
    lines: dict[tuple[str, ...], int],
    root: type[BaseModel],
    union_tags: frozenset[str],
) -> str:
    """Turn pydantic's first error into one line naming file, line, key and the fix."""
    error = exc.errors()[0]
    raw_loc = tuple(str(part) for part in error["loc"])
    loc = _user_loc(raw_loc, union_tags)
    dotted = ".".join(loc) or "(top level)"
    line = _nearest_line(loc, lines)
    where = f"{path}:{line}" if line else str(path)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(raw_loc[:-1], root)
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key '{dotted}'{hint}"
    if error["type"] == "missing":
        return f"{where}: missing required key '{dotted}'"
    if error["type"] == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        return f"{where}: '{dotted}' has an unknown type; expected one of {expected}"
    message = error["msg"].removeprefix("Value error, ")
    if not loc:  # a whole-task check; its message starts with the key path it is about
        key = tuple(message.split(" ", 1)[0].split("."))
        line = _nearest_line(key, lines)
        return f"{path}:{line}: {message}" if line else f"{path}: {message}"
    return f"{where}: '{dotted}': {message}"


def _user_loc(raw_loc: tuple[str, ...], union_tags: frozenset[str]) -> tuple[str, ...]:
    """The key path as the user wrote it: without the union tags pydantic inserts after a union
    field (output_format, a candidate)."""
    kept = []
    for index, part in enumerate(raw_loc):
        previous = raw_loc[index - 1] if index else ""
        after_union = previous == "output_format" or previous.isdigit()
        if not (after_union and part in union_tags):
            kept.append(part)
    return tuple(kept)


def _tag_of(model: type[BaseModel]) -> str | None:
    for key in ("type", "strategy"):
        if key in model.model_fields:
            return str(get_args(model.model_fields[key].annotation)[0])
    return None


def _members(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold, through Optional, list and tagged unions."""
    for meta in getattr(annotation, "__metadata__", ()):
        if hasattr(meta, "members"):  # a union resolved at validation time (a candidate)
            return list(meta.members())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _members(arg)]


def _allowed_keys(loc: tuple[str, ...], root: type[BaseModel]) -> list[str]:
    models: list[type[BaseModel]] = [root]
    for part in loc:
        tagged = [model for model in models if _tag_of(model) == part]
        if part.isdigit() or tagged:
            models = tagged or models
            continue
        fields = {f.alias or name: f for model in models for name, f in model.model_fields.items()}
        if part not in fields:
            return []
        models = _members(fields[part].annotation)
    if len(models) != 1:
        return []
    keys = [f.alias or name for name, f in models[0].model_fields.items()]
    return sorted(keys, key=lambda key: key not in {"type", "strategy"})  # the tag first


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line, for error messages."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = (*prefix, str(key.value))
                lines[path] = key.start_mark.line + 1
                walk(value, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                path = (*prefix, str(index))
                lines[path] = item.start_mark.line + 1
                walk(item, path)

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


def _nearest_line(loc: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
