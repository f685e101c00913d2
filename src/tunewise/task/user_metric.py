"""User metrics: `python:MODULE:FUNCTION`, a function `(prediction, reference, example) -> float`
in [0, 1], from a module in the task's folder or an installed one.

The task's folder comes first, so a `metrics.py` beside task.yaml is found without installing
anything; a dotted name (`pkg.scores`) there is `pkg/scores.py`. The example reaches the function
as a plain dict: its id, input, output and any extra fields of its data line.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import numbers
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from tunewise.errors import TunewiseError

PREFIX = "python:"
_SPEC = re.compile(r"^python:([A-Za-z_][\w.]*):([A-Za-z_]\w*)$")

Function = Callable[[str, str, Mapping[str, Any]], Any]


class UserMetricError(TunewiseError):
    """A user metric cannot be loaded, raised, or returned something that is not a score."""


def is_user_metric(name: str) -> bool:
    return name.startswith(PREFIX)


def load_user_metric(name: str, folder: Path | None) -> Function:
    """The function `name` names; UserMetricError says what is wrong with it."""
    match = _SPEC.match(name)
    if match is None:
        raise UserMetricError(
            f"metric '{name}' is not of the form python:MODULE:FUNCTION (e.g. python:metrics:score)"
        )
    module_name, function_name = match.groups()
    module = _module(module_name, None if folder is None else folder.resolve())
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UserMetricError(f"metric '{name}': {module_name} has no function {function_name}")
    return function  # type: ignore[no-any-return]


@cache
def _module(module_name: str, folder: Path | None) -> Any:
    local = None if folder is None else folder.joinpath(*module_name.split(".")).with_suffix(".py")
    try:
        if local is not None and local.is_file():
            # A private name per file, so two tasks' metrics.py never shadow each other.
            unique = f"tunewise_user_metric_{abs(hash(str(local)))}"
            spec = importlib.util.spec_from_file_location(unique, local)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        where = f"neither {local} nor an installed module" if local else "not an installed module"
        raise UserMetricError(f"metric module {module_name}: {where} ({exc})") from None
    except Exception as exc:  # the user's module failed while importing
        raise UserMetricError(
            f"metric module {module_name} failed to import: {type(exc).__name__}: {exc}"
        ) from None


def user_scores(
    name: str,
    function: Function,
    outputs: Sequence[str],
    references: Sequence[str],
    examples: Sequence[Mapping[str, Any]],
) -> list[float]:
    """The function's score per example; the first failure stops with the function and the
    example's id, before anything is written."""
    values = []
    for output, reference, example in zip(outputs, references, examples, strict=True):
        where = f"metric {name} on example {example.get('id')!r}"
        try:
            value = function(output, reference, example)
        except Exception as exc:
            raise UserMetricError(f"{where} raised {type(exc).__name__}: {exc}") from None
        if not isinstance(value, numbers.Real):
            raise UserMetricError(f"{where} returned {value!r}; a score is a number in [0, 1]")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise UserMetricError(f"{where} returned {value}; a score is a number in [0, 1]")
        values.append(float(value))
    return values
