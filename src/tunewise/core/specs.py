"""The candidates a task file can list: one spec class per built-in strategy, validated at the
edge like the rest of the task (unknown keys rejected); core/catalog.py registers them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tunewise.core.strict import Strict as _Strict


class CandidateSpec(_Strict):
    """The settings every candidate has; a strategy's spec class adds its own and narrows
    `strategy` to Literal[its name]."""

    strategy: str
    name: str | None = None
    model: str | None = None
    max_repairs: int | None = Field(
        default=None, ge=0, le=10, description="Overrides the task's max_repairs for this one."
    )
    decoding: Literal["free", "constrained"] = Field(
        default="free",
        description="constrained: a local model's generation is masked to the output format "
        "(JSON Schema, or a text pattern) token by token, so answers always parse.",
    )


class FineTuningOptions(CandidateSpec):
    """The fine-tuning settings a lora, qlora or hybrid candidate shares."""

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
        default=False,
        description="Pin nothing: run when --strategies names this strategy, and give the "
        "ladder this strategy's settings when it reaches its step.",
    )
    teacher: str | None = Field(
        default=None,
        description="Distillation: a model spec (or a name from `models:`) that labels the "
        "inputs (data.unlabeled, else the training inputs without their outputs); the student "
        "trains on the labels that pass the output format's validators.",
    )
    teacher_prompt: Literal["zero-shot", "few-shot"] = Field(
        default="few-shot",
        description="How the teacher is prompted: the contract alone, or with teacher_k "
        "stratified demos from the human-labelled train split (never the input being labelled).",
    )
    teacher_k: int = Field(default=4, ge=1, le=64, description="The teacher's few-shot demos.")
    min_confidence: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Label tasks: a teacher label is kept only when the teacher's probability "
        "of it reaches this.",
    )

    @model_validator(mode="after")
    def _teacher_settings_need_a_teacher(self) -> FineTuningOptions:
        if self.teacher is None:
            given = {"teacher_prompt", "teacher_k", "min_confidence"} & self.model_fields_set
            if given:
                raise ValueError(
                    f"{', '.join(sorted(given))} configure distillation; set teacher to a model "
                    "spec too"
                )
        return self


class RetrievalOptions(CandidateSpec):
    """The retrieval settings a rag or hybrid candidate shares."""

    retriever: Literal["fusion", "bm25", "dense"] = Field(
        default="fusion",
        description="bm25 (lexical), dense (embeddings), or their reciprocal-rank fusion.",
    )
    top_k: int = Field(default=4, ge=1, le=50, description="Passages retrieved per input.")
    context_tokens: int = Field(
        default=1536,
        ge=64,
        description="Token budget of the whole prompt; lower-ranked passages, then demos, "
        "are left out to stay under it.",
    )
    demos: int = Field(default=0, ge=0, le=64, description="Few-shot demos after the passages.")
    rerank: int = Field(
        default=0,
        ge=0,
        le=50,
        description="Rerank the first N retrieved passages by the answering model's likelihood "
        "of the question given each passage (0: off); its compute counts in each answer's.",
    )
    answer: Literal["free", "extractive", "auto"] = Field(
        default="free",
        description="free: generate the answer; extractive: copy a span of the passages (a "
        "local model; abstains below a confidence calibrated on train); auto: extractive for "
        "text answers that are mostly verbatim in the documents, else free.",
    )
    calibration_examples: int = Field(
        default=48,
        ge=0,
        description="Training questions an extractive candidate calibrates its abstention on "
        "(0: never abstain).",
    )
