"""`tunewise check`: risks in a task's inputs, found before any model runs.

A recipe: load the task's data as `tunewise run` does; look for hazardous characters; for each
distinct local model the candidates use, run the tokenizer checks (tokenizer only, no weights);
detect the languages of train and test. Findings are warnings, never errors, and the result is
one JSON-serialisable dict (shape in the README's "Risk checks").
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.checks.characters import Text, character_findings
from tunewise.checks.languages import language_breakdown, language_findings
from tunewise.checks.summary import headlines, notes
from tunewise.checks.tokenization import context_window, tokenizer_findings
from tunewise.checks.tokenizers import load_tokenizer
from tunewise.inference.prompts import build_messages
from tunewise.models.rendering import render_prompt, special_strings
from tunewise.task.config import Task
from tunewise.task.data import Dataset, Example, load_dataset

__all__ = ["check_task", "language_breakdown", "model_specs", "task_texts", "write_findings"]


def check_task(
    task: Task, *, model: str | None = None, loaded: Dataset | None = None
) -> dict[str, Any]:
    """Every risk check on a loaded task (see load_task); `model` overrides the task's model
    for candidates without their own, as `tunewise run --model` does. `loaded` is the task's
    own dataset when the caller has already read it."""
    train, test = task_texts(task, loaded)
    texts = [*train, *test]
    findings: dict[str, Any] = {
        "task": task.name,
        "examples": {"train": len(train), "test": len(test)},
        "characters": character_findings(texts),
        "tokenization": [model_findings(task, spec, texts) for spec in model_specs(task, model)],
        "languages": language_findings(train, test, seed=task.seed),
    }
    findings["warnings"] = headlines(findings)
    findings["notes"] = notes(findings)
    return findings


def task_texts(task: Task, loaded: Dataset | None = None) -> tuple[list[Text], list[Text]]:
    """Train and test inputs as `tunewise run` loads and splits them (the task's own dataset is
    `loaded` when given); the inputs of extra datasets follow, their ids prefixed with the
    dataset's name."""
    sources = [("", task.data)] + [(f"{d.name}/", d) for d in task.datasets]
    train: list[Text] = []
    test: list[Text] = []
    for prefix, entry in sources:
        dataset = (
            loaded
            if loaded is not None and not prefix
            else load_dataset(
                entry.train,
                entry.test,
                task.contract.output_format,
                test_fraction=task.data.test_fraction,
                seed=task.seed,
                entry=entry,
            )
        )
        train += _texts(dataset.train, "train", prefix)
        test += _texts(dataset.test, "test", prefix)
    return train, test


def _texts(examples: Sequence[Example], split: str, prefix: str) -> list[Text]:
    return [
        Text(f"{prefix}{e.id}", split, e.input, _tag(e.extra.get("language"))) for e in examples
    ]


def _tag(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def model_specs(task: Task, override: str | None = None) -> list[str]:
    """The distinct models the task's candidates use, picked as `tunewise run` picks them (a
    candidate's own model, else --model, else the task's); opt-in candidates count too."""
    chosen = [c.model or override or task.model for c in task.candidates]
    return list(dict.fromkeys(chosen or [override or task.model]))


def model_findings(task: Task, spec: str, texts: Sequence[Text]) -> dict[str, Any]:
    """The tokenizer checks for one model; "skipped" with the reason when it has no local
    tokenizer. Prompts are the zero-shot prompts the local backend builds."""
    loaded = load_tokenizer(spec, task.models)
    if isinstance(loaded, str):
        return {"model": spec, "status": "skipped", "reason": loaded}
    tokenizer = loaded.tokenizer
    specials = special_strings(tokenizer)

    def render(text: str) -> str:
        return render_prompt(tokenizer, build_messages(task.contract, text), specials=specials)

    window = context_window(loaded.config, tokenizer)
    return {
        "model": spec,
        "status": "checked",
        "tokenizer": loaded.source,
        **tokenizer_findings(tokenizer, texts, window, render),
    }


def write_findings(findings: dict[str, Any], path: Path) -> Path:
    """Write the findings as JSON atomically: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # mkstemp's 0600 would hide the file from other readers
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(findings, out, indent=2, ensure_ascii=False)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
