"""Label probabilities from a generated answer's token log-probabilities, as chat endpoints
report them (`logprobs.content`: each generated token with its top alternatives).

The answer is walked token by token along the labels' shared prefixes. At each step, an
alternative token whose text leads to labels gives its probability (times that of the path so
far) to those labels, split evenly where it begins several; the generated token carries the
path on while the text so far still begins several labels, and where the logprobs end the
path's mass goes to the label the generated text names. No mass that begins a label is dropped:
"search" beginning both `search_creative_work` and `search_screening_event` counts for them,
split by what the later tokens and the generated text say.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.models.replies import parse_label

# Characters an answer may open with that are no part of a label: whitespace, quotes, markdown.
_OPENING = " \t\r\n\"'`*_"
_TAIL = re.compile(r"[\w-]")  # a character that would continue a label's last word


@dataclass(frozen=True)
class Step:
    """One generated token, its log-probability and the top alternatives at its position."""

    token: str
    logprob: float
    alternatives: tuple[tuple[str, float], ...]


def chat_steps(choice: dict[str, Any]) -> list[Step] | None:
    """The steps of a chat completion choice's `logprobs.content`; None without logprobs."""
    try:
        content = choice["logprobs"]["content"]
        steps = []
        for item in content:
            top = item.get("top_logprobs") or []
            pairs = tuple((str(a["token"]), float(a["logprob"])) for a in top)
            steps.append(Step(str(item["token"]), float(item["logprob"]), pairs))
    except (LookupError, TypeError, ValueError, AttributeError):
        return None
    return steps or None


def matching(text: str, labels: Sequence[str]) -> list[str]:
    """The labels an answer that so far reads `text` may still become (its text begins them),
    or has become (a label followed by a character no label word continues with)."""
    folded = text.casefold()
    if not folded:
        return []
    found = []
    for label in labels:
        name = label.casefold()
        if name.startswith(folded) or (
            folded.startswith(name) and not _TAIL.match(folded[len(name)])
        ):
            found.append(label)
    return found


def walk(
    steps: Sequence[Step], labels: Sequence[str], text: str, *, opening: str = _OPENING
) -> dict[str, float] | None:
    """Probability of each label from the steps of an answer whose full text is `text`;
    None when no alternative and not the answer itself lead to a label. Characters in
    `opening` at the very start of the answer are skipped."""
    mass = dict.fromkeys(labels, 0.0)
    reach = 1.0  # probability of the path taken so far
    said = ""  # the generated text so far
    path: list[str] = []
    for step in steps:
        taken = (said + step.token).lstrip(opening)
        options = dict(step.alternatives)
        options.setdefault(step.token, step.logprob)
        along = 0.0  # alternatives reading as the generated token does (" search", "search")
        for token, logprob in options.items():
            p = math.exp(min(logprob, 0.0))
            read = (said + token).lstrip(opening)
            if read.casefold() == taken.casefold():
                along += p
                continue
            reached = matching(read, labels)
            for label in reached:
                mass[label] += reach * p / len(reached)
        said += step.token
        reach *= along
        path = matching(taken, labels)
        if not taken:
            continue  # only opening characters so far: no label is told apart yet
        if len(path) <= 1:
            break
    else:  # the logprobs ended with several labels still open: the generated text decides
        path = _named(text, path or list(labels))
    for label in path:
        mass[label] += reach / len(path)
    total = sum(mass.values())
    if not total > 0:
        return None
    return {label: value / total for label, value in mass.items()}


def _named(text: str, candidates: list[str]) -> list[str]:
    """Of the labels still open, the one the generated text names, else all of them."""
    named = parse_label(text, candidates)
    return [named] if named is not None else candidates


def label_probabilities(
    choice: dict[str, Any], labels: Sequence[str], text: str
) -> dict[str, float] | None:
    """Label probabilities from an unconstrained answer's logprobs; None without any."""
    steps = chat_steps(choice)
    return None if steps is None else walk(steps, labels, text)


def constrained_probabilities(
    choice: dict[str, Any], labels: Sequence[str], text: str, key: str
) -> tuple[str, dict[str, float] | None] | None:
    """The label a JSON answer `{"KEY": "LABEL"}` gives, and the labels' probabilities from the
    logprobs of the tokens that spell it (None when they cannot be lined up with the text);
    None when the answer is not such a JSON object (the server ignored the constraint)."""
    try:
        value = json.loads(text)[key]
    except (ValueError, TypeError, LookupError):
        return None
    if value not in labels:
        return None
    steps = chat_steps(choice)
    if steps is None or "".join(s.token for s in steps) != text:
        return value, None
    found = re.search(rf'"{re.escape(key)}"\s*:\s*"', text)
    if found is None:
        return value, None
    return value, walk(_from(steps, found.end()), labels, value, opening="")


def _from(steps: Sequence[Step], start: int) -> list[Step]:
    """The steps from character `start` of the text on; the token holding that character is
    cut there, and so are its alternatives (those not sharing the cut part are other JSON)."""
    at = 0
    for index, step in enumerate(steps):
        if at + len(step.token) > start:
            cut = start - at
            head = step.token[:cut]
            alternatives = tuple(
                (token[cut:], logprob)
                for token, logprob in step.alternatives
                if token.startswith(head) and token != step.token
            )
            first = Step(step.token[cut:], step.logprob, alternatives)
            return [first, *steps[index + 1 :]]
        at += len(step.token)
    return []
