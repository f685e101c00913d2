"""The standard library's docstring house style as a tunewise user metric.

`python:house_style:pep257` in task.yaml scores each summary from 0 to 1 on the PEP 257 rules
a reader sees at a glance, whatever it says: one line, a capital first letter, a final period,
the imperative mood ("Return", not "Returns" or "This function returns"), and no restating of
the function's name as "name(args)".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Third-person openings the imperative rule excludes; "-ss" words (Process, Pass) are verbs.
_NOT_IMPERATIVE = re.compile(r"^(?:this|the|a|an|it)\b|^\w+[^s]s\b", re.IGNORECASE)
_CALL = re.compile(r"^\w+\(.*\)")


def pep257(prediction: str, reference: str, example: Mapping[str, Any]) -> float:
    """The share of the five rules the summary keeps."""
    summary = prediction.strip()
    if not summary:
        return 0.0
    first_word = summary.split()[0]
    rules = [
        "\n" not in summary,
        summary[0].isupper(),
        summary.endswith("."),
        not _NOT_IMPERATIVE.match(first_word + " "),
        not _CALL.match(summary),
    ]
    return sum(rules) / len(rules)
