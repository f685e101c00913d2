"""The task file: what the user wants done, on which data, to what target.

Everything here is validated at the edge (pydantic, unknown keys rejected) so the rest of the
pipeline can trust it. Relative paths resolve against the task file's folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunewise.errors import TaskError

DEFAULT_MODEL = "smollm2-135m-instruct"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LabelFormat(_Strict):
    """The answer is exactly one label from a fixed set."""

    type: Literal["label"]
    labels: list[str] = Field(min_length=2, description="The allowed labels, in a stable order.")

    @field_validator("labels")
    @classmethod
    def _distinct_non_empty(cls, labels: list[str]) -> list[str]:
        stripped = [label.strip() for label in labels]
        if any(not label for label in stripped):
            raise ValueError("labels must be non-empty strings")
        if len(set(stripped)) != len(stripped):
            raise ValueError(f"labels must be distinct, got {labels}")
        return stripped


class JsonFormat(_Strict):
    """The answer is one JSON value that validates against a JSON Schema."""

    type: Literal["json"]
    json_schema: dict[str, Any] = Field(
        default_factory=dict, alias="schema", description="JSON Schema the answer must satisfy."
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        from tunewise.evaluation.validators import check_schema

        problem = check_schema(schema)
        if problem:
            raise ValueError(problem)
        return schema


class TextFormat(_Strict):
    """The answer is free text, optionally bounded in length."""

    type: Literal["text"]
    max_chars: int | None = Field(default=None, gt=0, description="Longest valid answer.")


OutputFormat = Annotated[LabelFormat | JsonFormat | TextFormat, Field(discriminator="type")]


class Contract(_Strict):
    """The input contract: every request is built from all four fields."""

    objective: str = Field(min_length=1, description="What the model must do, in one sentence.")
    audience: str = Field(min_length=1, description="Who reads the answers.")
    source_material: str = Field(min_length=1, description="What the model may rely on.")
    output_format: OutputFormat


class DataFiles(_Strict):
    """Where the examples are; paths are relative to the task file."""

    train: Path = Field(description="JSONL or CSV of training examples.")
    test: Path | None = Field(default=None, description="Held-out examples; else split from train.")
    documents: Path | None = Field(default=None, description="Folder or JSONL of documents.")
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="Used when test is absent.")


METRICS_BY_FORMAT: dict[str, tuple[str, ...]] = {
    "label": ("accuracy", "macro_f1", "format_validity"),
    "text": ("exact_match", "token_f1", "format_validity"),
    "json": ("field_f1", "exact_match", "json_validity", "format_validity"),
}


class Target(_Strict):
    """The quality bar a candidate must reach on the held-out data."""

    metric: str = Field(description="A metric of the output format, e.g. accuracy.")
    min: float = Field(ge=0, le=1, description="Lowest acceptable value.")


class Usage(_Strict):
    """Expected traffic, for the cost side of the decision."""

    requests_per_month: int = Field(default=10_000, ge=0)
    horizon_months: int = Field(default=12, ge=1)


class ZeroShotCandidate(_Strict):
    """A system prompt built from the contract, then the input."""

    strategy: Literal["zero-shot"]
    name: str | None = None
    model: str | None = None


class FewShotCandidate(_Strict):
    """The zero-shot prompt plus k demonstrations from the training split."""

    strategy: Literal["few-shot"]
    name: str | None = None
    model: str | None = None
    k: int = Field(default=8, ge=1, le=64, description="Number of demonstrations.")
    selection: Literal["stratified", "similar"] = Field(
        default="stratified",
        description="stratified: one seeded label-balanced set; similar: BM25 neighbours.",
    )


class LoraCandidate(_Strict):
    """A LoRA adapter trained on the train split; answers with the short zero-shot prompt.

    `qlora` is the same with the base model loaded in 4 bits (needs CUDA and bitsandbytes)."""

    strategy: Literal["lora", "qlora"]
    name: str | None = None
    model: str | None = None
    r: int = Field(default=16, ge=1, description="LoRA rank.")
    alpha: int = Field(default=32, ge=1, description="LoRA scaling numerator (alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default="all-linear", description="Module names to adapt, or all linear layers."
    )
    learning_rate: float = Field(default=2e-4, gt=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    epochs: int = Field(default=2, ge=1)
    batch_size: int = Field(default=4, ge=1, description="Examples per step on each device.")
    gradient_accumulation: int = Field(default=1, ge=1)
    validation_fraction: float = Field(
        default=0.1, gt=0, lt=0.5, description="Seeded slice of train held out for early stopping."
    )
    evaluations_per_epoch: int = Field(default=4, ge=1, description="Validation-loss checks.")
    early_stopping_patience: int = Field(
        default=3, ge=1, description="Stop after this many checks without a better validation loss."
    )
    max_train_examples: int | None = Field(
        default=None, ge=10, description="Train on a seeded, stratified subset of this size."
    )
    max_length: int = Field(default=512, ge=16, description="Longer examples are left out.")
    checkpoint_every: int = Field(default=25, ge=1, description="Steps between checkpoints.")
    opt_in: bool = Field(
        default=False, description="Run only when --strategies names this strategy (slow arms)."
    )


CandidateSpec = Annotated[
    ZeroShotCandidate | FewShotCandidate | LoraCandidate, Field(discriminator="strategy")
]
STRATEGIES: tuple[str, ...] = ("zero-shot", "few-shot", "lora", "qlora")
_UNION_TAGS = frozenset({"label", "json", "text", *STRATEGIES})


class Prices(_Strict):
    """What compute costs, so measured seconds become money."""

    compute_usd_per_hour: float | None = Field(
        default=None, ge=0, description="Price of an hour of the machine that trains and serves."
    )


class Task(_Strict):
    """A task file, validated. Build it with load_task()."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    contract: Contract
    data: DataFiles
    target: Target | None = None
    usage: Usage = Usage()
    prices: Prices = Prices()
    model: str = DEFAULT_MODEL
    seed: int = Field(default=0, description="Seed for splits, demo draws and bootstrap.")
    max_new_tokens: int = Field(default=256, ge=1, description="Generation budget per answer.")
    candidates: list[CandidateSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _target_fits_format(self) -> Task:
        if self.target is not None:
            allowed = METRICS_BY_FORMAT[self.contract.output_format.type]
            if self.target.metric not in allowed:
                raise ValueError(
                    f"target.metric '{self.target.metric}' does not apply to "
                    f"{self.contract.output_format.type} output; use one of {', '.join(allowed)}"
                )
        return self


def task_schema() -> dict[str, Any]:
    """JSON Schema of task.yaml, for editors and `tunewise schema`."""
    return Task.model_json_schema(by_alias=True)


def task_hash(task: Task) -> str:
    """sha256 of the task's canonical JSON. Data files count by name only: their content is in
    the data hash, and the same task must hash the same in any folder."""
    document = task.model_dump(mode="json", by_alias=True)
    for key in ("train", "test", "documents"):
        if document["data"][key]:
            document["data"][key] = Path(document["data"][key]).name
    blob = json.dumps(document, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_task(path: str | Path) -> Task:
    """Read and validate a task file; relative data paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"{path}: no such task file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read task file ({exc})") from None
    try:
        raw = yaml.safe_load(text)
        lines = _key_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise TaskError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise TaskError(
            f"{path}: a task file must be a mapping of keys (name, contract, data, ...)"
        )
    try:
        task = Task.model_validate(raw)
    except ValidationError as exc:
        raise TaskError(_explain(path, exc, lines)) from None
    return _resolve_paths(task, path.parent)


def _resolve_paths(task: Task, base: Path) -> Task:
    files = task.data
    resolved = {
        key: (base / value).resolve() if isinstance(value, Path) else value
        for key, value in files.model_dump().items()
    }
    return task.model_copy(update={"data": DataFiles(**resolved)})


def _explain(path: Path, exc: ValidationError, lines: dict[tuple[str, ...], int]) -> str:
    """Turn pydantic's first error into one line naming file, line, key and the fix."""
    error = exc.errors()[0]
    raw_loc = tuple(str(part) for part in error["loc"])
    loc = _user_loc(raw_loc)
    dotted = ".".join(loc) or "(top level)"
    line = _nearest_line(loc, lines)
    where = f"{path}:{line}" if line else str(path)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(raw_loc[:-1])
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


def _user_loc(raw_loc: tuple[str, ...]) -> tuple[str, ...]:
    """The key path as the user wrote it: without the union tags pydantic inserts after a union
    field (output_format, a candidate)."""
    kept = []
    for index, part in enumerate(raw_loc):
        previous = raw_loc[index - 1] if index else ""
        after_union = previous == "output_format" or previous.isdigit()
        if not (after_union and part in _UNION_TAGS):
            kept.append(part)
    return tuple(kept)


def _tag_of(model: type[BaseModel]) -> str | None:
    for key in ("type", "strategy"):
        if key in model.model_fields:
            return str(get_args(model.model_fields[key].annotation)[0])
    return None


def _members(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold, through Optional, list and tagged unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _members(arg)]


def _allowed_keys(loc: tuple[str, ...]) -> list[str]:
    models: list[type[BaseModel]] = [Task]
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
    return [f.alias or name for name, f in models[0].model_fields.items()]


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
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
