"""`tunewise export` for prompting candidates: the prompt that was measured, in the form the next
tool wants. The candidate is rebuilt from the run folder as `tunewise serve` rebuilds it, asked
for the request of the input `{{input}}`, and checked against the demos the run recorded.

- openai-messages: {"model", "messages", "tunewise": header}, the input as `{{input}}`; a
  zero-shot candidate with `prompt_file:` measures exactly these messages again;
- promptfoo: a folder with prompt.json (promptfoo's JSON chat format) and promptfooconfig.yaml;
- text: the system prompt and the demos as readable text under a `#` header.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from tunewise.errors import TunewiseError
from tunewise.models.backend import Message
from tunewise.schemas.run_candidate import CandidateRecord
from tunewise.schemas.run_file import RunRecord, read_candidate, read_run
from tunewise.strategies.zero_shot.prompt_file import PLACEHOLDER
from tunewise.task.config import METRICS_BY_FORMAT
from tunewise.task.data import Example

PromptFormat = Literal["openai-messages", "promptfoo", "text"]
PROMPT_FORMATS: tuple[str, ...] = ("openai-messages", "promptfoo", "text")
ADAPTER_FORMATS: tuple[str, ...] = ("adapter", "merged", "openai-jsonl")
PROMPTFOO_PROMPT = "prompt.json"
PROMPTFOO_CONFIG = "promptfooconfig.yaml"
_SUFFIX = {"openai-messages": ".json", "promptfoo": "", "text": ".txt"}


@dataclass(frozen=True)
class MeasuredPrompt:
    """A prompting candidate's messages as measured, the input left as `{{input}}`."""

    messages: list[Message]
    model: str  # the id an OpenAI-compatible API knows the model by
    base_url: str | None  # the candidate's OpenAI-compatible endpoint, if it used one
    api_key_env: str | None
    label_task: bool  # answers were labels picked by likelihood, not generated text
    header: dict[str, Any]


def read_entry(run_dir: Path, candidate: str) -> tuple[RunRecord, CandidateRecord]:
    """The run's results.json and the candidate's entry in it."""
    run = read_run(run_dir)
    entry = run.candidate(candidate)
    if entry is None:
        names = ", ".join(c.name for c in run.candidates)
        raise TunewiseError(
            f"{run.source}: no candidate '{candidate}'; the run has {names or 'none'}"
        )
    return run, entry


def formats_for(entry: CandidateRecord) -> tuple[str, ...]:
    """What a candidate can be exported as: fine-tuned ones their adapter, prompting ones their
    prompt; a retrieving candidate's prompt changes with every input, so neither."""
    if entry.setup.adapter:
        return ADAPTER_FORMATS
    if entry.family == "prompting":
        return PROMPT_FORMATS
    return ()


def check_format(entry: CandidateRecord | Mapping[str, Any], fmt: str) -> None:
    """A one-line error naming the formats this candidate allows, when `fmt` is not one."""
    if not isinstance(entry, CandidateRecord):
        entry = read_candidate(entry)
    name, strategy = entry.name, entry.strategy
    if entry.status != "measured":
        raise TunewiseError(
            f"candidate '{name}' was skipped in this run ({entry.skipped_reason}): "
            "nothing to export"
        )
    allowed = formats_for(entry)
    if fmt in allowed:
        return
    if not allowed:
        why = "holds passages retrieved per input" if entry.family == "retrieval" else ""
        raise TunewiseError(
            f"candidate '{name}' is {strategy}: it has no adapter and its prompt "
            f"{why or 'is not a fixed one'}, so there is nothing to export; serve it with "
            f"`tunewise serve RUN_DIR --candidate {name}`"
        )
    kind = "fine-tuned" if allowed == ADAPTER_FORMATS else "a prompting candidate"
    raise TunewiseError(
        f"candidate '{name}' is {kind} ({strategy}): export it with --format "
        f"{' | '.join(allowed)}, not {fmt}"
    )


def default_out(run_dir: Path, candidate: str, fmt: str) -> Path:
    """RUN_DIR/exports/NAME-FORMAT, with .json or .txt for the one-file formats."""
    return run_dir / "exports" / f"{candidate}-{fmt}{_SUFFIX.get(fmt, '')}"


def export_prompt(run_dir: Path, candidate: str, fmt: PromptFormat, out: Path) -> Path:
    """Write the candidate's prompt to `out` (a file; a folder for promptfoo), all or nothing."""
    results, entry = read_entry(run_dir, candidate)
    check_format(entry, fmt)
    if out.exists():
        raise TunewiseError(f"{out}: already exists; choose a new --out path")
    prompt = measured_prompt(run_dir, results, entry)
    if fmt == "openai-messages":
        _write_file(out, openai_messages(prompt))
    elif fmt == "text":
        _write_file(out, text(prompt))
    else:
        config = promptfoo_config(prompt, PROMPTFOO_PROMPT)
        _write_folder(out, {PROMPTFOO_PROMPT: promptfoo_prompt(prompt), PROMPTFOO_CONFIG: config})
    return out


def measured_prompt(run_dir: Path, results: RunRecord, entry: CandidateRecord) -> MeasuredPrompt:
    """Rebuild the candidate, ask it for the request of `{{input}}`, and check that request
    against what the run recorded (one demo set for every test input, the searched prompt)."""
    from tunewise.inference.repair import repairs_for
    from tunewise.records.rebuild import rebuild_candidate

    name = entry.name
    recorded = _recorded_demo_sets(run_dir / "predictions.jsonl", name)
    params = entry.params
    if "similar" in (params.get("selection"), params.get("demo_set")) or len(recorded) > 1:
        raise TunewiseError(
            f"candidate '{name}' picks its demos per input (BM25 neighbours in train), so no "
            "one prompt reproduces it; export a stratified few-shot or optimized-prompt "
            f"candidate, or serve this one with `tunewise serve RUN_DIR --candidate {name}`"
        )
    task, spec, predictor = rebuild_candidate(run_dir, name)
    request = predictor.request(Example(id="export", input=PLACEHOLDER, output="", source="export"))
    messages = [Message(role=m["role"], content=m["content"]) for m in request.messages]
    if messages[-1]["role"] != "user" or PLACEHOLDER not in messages[-1]["content"]:
        raise TunewiseError(f"candidate '{name}': its requests do not end with the input")
    searched = entry.setup.search.prompt if entry.setup.search else None
    other_demos = bool(recorded) and request.demo_ids not in recorded
    if other_demos or (searched is not None and messages[0]["content"] != searched):
        raise TunewiseError(
            f"candidate '{name}' rebuilt with another prompt than the run measured (the "
            "training data or the response cache changed); re-run the task, then export"
        )
    endpoint = getattr(predictor.backend, "endpoint", None)  # an OpenAI-compatible server
    model = endpoint.model if endpoint is not None else str(entry.model).removeprefix("hf:")
    header = _header(results, entry, request.demo_ids, task.max_new_tokens)
    # What answered besides the prompt: a grammar mask, and re-asking invalid answers.
    header |= {"decoding": spec.decoding, "max_repairs": repairs_for(task, spec)}
    return MeasuredPrompt(
        messages,
        model,
        endpoint.base_url if endpoint is not None else None,
        endpoint.api_key_env if endpoint is not None else None,
        task.contract.output_format.type == "label",
        header,
    )


def _recorded_demo_sets(path: Path, name: str) -> set[tuple[str, ...]]:
    """The distinct demo-id lists the candidate's test answers were given."""
    found: set[tuple[str, ...]] = set()
    if not path.exists():
        return found
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("candidate") == name and row.get("split") == "test":
                found.add(tuple(row.get("demo_ids") or ()))
    return found


def _header(
    results: RunRecord, entry: CandidateRecord, demo_ids: Sequence[str], budget: int | None
) -> dict[str, Any]:
    """Where the prompt comes from and what it scored (value, 95% CI, n) in that run."""
    metrics, task = entry.metrics, results.task
    preferred = task.target.metric if task.target else METRICS_BY_FORMAT[str(task.output_format)][0]
    metric = preferred if preferred in metrics else next(iter(metrics), None)
    scored = metrics.get(metric) if metric else None
    return {
        "run_id": results.run_id,
        "task": task.name,
        "candidate": entry.name,
        "strategy": entry.strategy,
        "model": entry.model,
        "metric": {
            "name": metric,
            **{k: getattr(scored, k, None) for k in ("value", "ci_low", "ci_high", "n")},
        },
        "data_hash": results.data.hash,
        "seed": results.seed,
        "demo_ids": list(demo_ids),
        "temperature": 0,
        "max_new_tokens": budget or task.max_new_tokens,
        "code_version": results.code_version,
    }


def _measured_line(header: dict[str, Any]) -> str:
    metric = header["metric"]
    if metric["name"] is None or metric["value"] is None:
        return "no metric recorded"
    ci = f"95% CI {metric['ci_low']:.4f}-{metric['ci_high']:.4f}, n={metric['n']}"
    return f"{metric['name']} {metric['value']:.4f} ({ci})"


def _comment(prompt: MeasuredPrompt) -> list[str]:
    """The `#` header lines the text and promptfoo formats share."""
    h = prompt.header
    lines = [
        f"tunewise export of candidate '{h['candidate']}' ({h['strategy']}) from run {h['run_id']}",
        f"measured: {_measured_line(h)} with model {h['model']}",
        f"data sha256 {h['data_hash']}, seed {h['seed']}",
        f"answers were greedy (temperature 0), at most {h['max_new_tokens']} new tokens",
    ]
    if prompt.label_task:
        lines.append(
            "tunewise scored the labels (by likelihood where the model gives it); a plain chat "
            "call's text can differ"
        )
    return [f"# {line}" for line in lines]


def openai_messages(prompt: MeasuredPrompt) -> str:
    document = {"model": prompt.model, "messages": prompt.messages, "tunewise": prompt.header}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def text(prompt: MeasuredPrompt) -> str:
    """The system prompt, each demo as input and output, then where the input goes."""
    blocks = ["\n".join(_comment(prompt))]
    *turns, last = prompt.messages
    demo = 0
    for turn in turns:
        if turn["role"] == "system":
            blocks.append(f"System prompt:\n{turn['content']}")
        elif turn["role"] == "user":
            demo += 1
            blocks.append(f"Example {demo} input:\n{turn['content']}")
        else:
            blocks.append(f"Example {demo} output:\n{turn['content']}")
    blocks.append(f"Input (the last user message; {PLACEHOLDER} is where each input goes):\n")
    blocks[-1] += last["content"]
    return "\n\n".join(blocks) + "\n"


def promptfoo_prompt(prompt: MeasuredPrompt) -> str:
    """promptfoo renders every string of a JSON prompt with Nunjucks: text that looks like a
    tag is kept literal in {% raw %}, and only the last message's `{{input}}` stays a variable."""
    *turns, last = prompt.messages
    rendered = [{"role": m["role"], "content": _literal(m["content"])} for m in turns]
    pieces = last["content"].split(PLACEHOLDER)
    rendered.append({"role": "user", "content": PLACEHOLDER.join(map(_literal, pieces))})
    return json.dumps(rendered, indent=2, ensure_ascii=False) + "\n"


def _literal(text: str) -> str:
    if not any(tag in text for tag in ("{{", "{%", "{#")):
        return text
    if "endraw" in text:
        raise TunewiseError("a message holds '{% endraw %}'; promptfoo cannot keep it literal")
    return "{% raw %}" + text + "{% endraw %}"


def promptfoo_config(prompt: MeasuredPrompt, prompt_file: str) -> str:
    """promptfooconfig.yaml: the prompt file, the candidate's endpoint as an OpenAI provider
    (a commented placeholder for a local model), and room for tests."""
    h = prompt.header
    head: dict[str, Any] = {
        "description": f"{h['task']}: {h['candidate']} from tunewise run {h['run_id']}",
        "prompts": [f"file://{prompt_file}"],
    }
    settings: dict[str, Any] = {"temperature": 0, "max_tokens": h["max_new_tokens"]}
    if prompt.base_url is not None:
        config = {"apiBaseUrl": prompt.base_url, **settings}
        if prompt.api_key_env:
            config["apiKeyEnvar"] = prompt.api_key_env  # the variable's name, never the key
        provider = {"id": f"openai:chat:{prompt.model}", "config": config}
        providers = _yaml({"providers": [provider]})
    else:
        config = {"apiBaseUrl": "http://127.0.0.1:8000/v1", **settings}
        example = _yaml([{"id": "openai:chat:MODEL", "config": config}]).splitlines()
        providers = "\n".join(
            [
                "providers:",
                f"  # The candidate ran on the local model '{h['model']}'; serve that model on",
                "  # an OpenAI-compatible server (vLLM, Ollama, llama.cpp) and name it, e.g.:",
                *(f"  # {line}" for line in example),
                "  []",
                "",
            ]
        )
    tests = "\n".join(
        [
            "# one test per input, e.g.:",
            '#   - vars: {input: "a new input"}',
            '#     assert: [{type: equals, value: "the expected answer"}]',
            "tests: []",
            "",
        ]
    )
    return "\n".join(_comment(prompt)) + "\n" + _yaml(head) + providers + tests


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=1000)


def _write_file(out: Path, content: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(content)
        os.replace(staging, out)
    finally:
        Path(staging).unlink(missing_ok=True)


def _write_folder(out: Path, files: dict[str, str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, content in files.items():
            (staging / name).write_text(content, encoding="utf-8")
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
