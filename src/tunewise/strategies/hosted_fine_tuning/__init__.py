"""hosted-fine-tuning and hosted-hybrid: a model fine-tuned by a service through OpenAI's
fine-tuning API (OpenAI, or `tunewise fine-tuning-server` on a GPU machine), then answered
through that endpoint like any endpoint candidate (steps 3 and 4). Nothing trains here, so a
machine without a GPU reaches fine-tuning; the job costs money, so it is keyed by content and
re-attached, never started twice (service_jobs.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunewise.core.catalog import Strategy
from tunewise.core.specs import CandidateSpec, RetrievalOptions

Auto = Literal["auto"]


class HostedFineTuningOptions(CandidateSpec):
    """The service's hyperparameters ("auto": the service chooses) and how tunewise splits the
    data and waits. `model` is a name from the task's `models:` section: the base model."""

    n_epochs: int | Auto = Field(default="auto", description="Epochs over the training file.")
    batch_size: int | Auto = Field(default="auto", description="Examples per training step.")
    learning_rate_multiplier: float | Auto = Field(
        default="auto", description="Multiplies the service's base learning rate."
    )
    seed: int | None = Field(
        default=None, description="The job's seed; default: the task's seed (reproducible)."
    )
    suffix: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Added to the fine-tuned model's name; default: tw- and the job's content "
        "hash, which also finds the job again after an interrupted run.",
    )
    validation_fraction: float = Field(
        default=0.1, gt=0, lt=0.5, description="Seeded slice of train sent as the validation file."
    )
    max_train_examples: int | None = Field(
        default=None, ge=10, description="Train on a seeded, stratified subset of this size."
    )
    poll_seconds: float = Field(
        default=15.0, gt=0, le=600, description="Seconds between looks at the running job."
    )
    opt_in: bool = Field(
        default=False,
        description="Pin nothing: give the ladder these settings when it reaches this step.",
    )

    def hyperparameters(self) -> dict[str, int | float | str]:
        """The API's `hyperparameters` object."""
        return {
            "n_epochs": self.n_epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }


class HostedFineTuningCandidate(HostedFineTuningOptions):
    """A model fine-tuned by the endpoint's fine-tuning service on the short prompt, answering
    with it."""

    strategy: Literal["hosted-fine-tuning"]


class HostedHybridCandidate(HostedFineTuningOptions, RetrievalOptions):
    """A model fine-tuned by the service on the retrieving prompts (passages included), as
    hybrid's rag-trained adapter is, answering with retrieved passages."""

    strategy: Literal["hosted-hybrid"]


SERVICE = frozenset({"fine-tuning-endpoint"})  # it trains on the service, not here

STRATEGIES = [
    Strategy(
        "hosted-fine-tuning",
        "fine-tuning",
        HostedFineTuningCandidate,
        "tunewise.strategies.hosted_fine_tuning.service_training:prepare",
        "a model fine-tuned by the endpoint's fine-tuning service (OpenAI's API)",
        "High",
        trains=True,
        requires=SERVICE,
        ladder="measured",
        rank=5,
    ),
    Strategy(
        "hosted-hybrid",
        "hybrid",
        HostedHybridCandidate,
        "tunewise.strategies.hosted_fine_tuning.service_training:prepare_hybrid",
        "a service-fine-tuned model trained and answering with retrieved passages",
        "High",
        retrieves=True,
        trains=True,
        requires=SERVICE,
        ladder="measured",
        rank=5,
    ),
]
