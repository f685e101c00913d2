"""Steps 3 and 4 on a fine-tuning service: write the exact serving prompts as chat JSONL (train
and validation), have the endpoint's service fine-tune its model on them (service_jobs.py), and
answer with the `ft:` model through the same endpoint, like any endpoint candidate.

hosted-fine-tuning trains and answers with the short prompt, as lora does (the contract's system
prompt and the input); hosted-hybrid with the retrieving prompts, as hybrid's rag-trained adapter
does. Setup is the job's wall time (the service's compute, not this machine's) and its trained
tokens, which the cost model prices at the base model's training price.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tunewise.core.progress import Progress
from tunewise.core.setup import Setup, Training
from tunewise.errors import TunewiseError
from tunewise.home import tunewise_home
from tunewise.inference.predictor import PromptPredictor
from tunewise.inference.prompts import build_messages
from tunewise.models.backend import Backend, Message
from tunewise.models.openai_compat import OpenAICompatible
from tunewise.retrieval.index import Index
from tunewise.strategies.few_shot.demos import stratified_demos
from tunewise.strategies.hosted_fine_tuning import (
    HostedFineTuningCandidate,
    HostedFineTuningOptions,
    HostedHybridCandidate,
)
from tunewise.strategies.hosted_fine_tuning.service_api import OpenAIService
from tunewise.strategies.hosted_fine_tuning.service_jobs import FinishedJob, JobRequest, fine_tune
from tunewise.strategies.rag.rerank import reranker
from tunewise.strategies.rag.retrieving import (
    RagPredictor,
    answering,
    index_record,
    require_index,
    retrieval_params,
)
from tunewise.task.config import Task
from tunewise.task.data import Example
from tunewise.task.training_split import training_split

Prompt = Callable[[Example], list[Message]]


@dataclass(frozen=True)
class ServiceModel:
    """A model the service fine-tuned, and what its job recorded."""

    job: FinishedJob
    examples: int
    validation_examples: int

    def model(self, base: OpenAICompatible, strategy: str) -> OpenAICompatible:
        """The `ft:` model on the base's endpoint; its spec names the base and the job."""
        record = self.job.record
        endpoint = replace(base.endpoint, model=str(record["fine_tuned_model"]))
        return OpenAICompatible(f"{base.spec}+{strategy}:{record['job_id']}", endpoint)

    def params(self, base: OpenAICompatible) -> dict[str, Any]:
        record = self.job.record
        return {
            "base_model": base.spec,
            "fine_tuned_model": record["fine_tuned_model"],
            "job_id": record["job_id"],
            "train_examples": self.examples,
            "hyperparameters": record.get("hyperparameters_used") or record["hyperparameters"],
        }

    def setup(self, task: Task, base: OpenAICompatible) -> Setup:
        """The job as setup: its wall time on the service and its trained tokens."""
        record = self.job.record
        began, ended = record.get("created_at"), record.get("finished_at")
        seconds = float(ended - began) if began and ended and ended >= began else 0.0
        tokens = int(record.get("trained_tokens") or 0)
        rate = training_price(task, base.spec)
        cost = None if rate is None else round(tokens * rate / 1e6, 6)
        kept = ("job_id", "status", "fine_tuned_model", "base_url", "model", "suffix", "seed")
        training = Training(
            seconds=seconds,
            examples=self.examples,
            validation_examples=self.validation_examples,
            remote=True,
            trained_tokens=tokens,
            cached=self.job.cached,
            cost_usd=cost,
            hyperparameters=record.get("hyperparameters_used") or record["hyperparameters"],
            files=record.get("files", {}),
            events=record.get("events", []),
            metrics=record.get("metrics", []),
            **{k: record.get(k) for k in kept},
        )
        return Setup(seconds=seconds, training=training)


def training_price(task: Task, model: str) -> float | None:
    """USD per million trained tokens of the base model: prices.tokens, else its models: entry."""
    listed = task.prices.tokens.get(model)
    endpoint = task.models.get(model)
    for price in (listed, endpoint.prices if endpoint else None):
        if price is not None and price.training_per_million is not None:
            return price.training_per_million
    return None


def prepare(
    task: Task,
    spec: HostedFineTuningCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
    index: Any = None,
) -> PromptPredictor:
    """Fine-tune on the service with the short prompt (or reuse the finished job), then answer
    with the fine-tuned model and the same prompt."""
    base = service_base(backend, spec, name)
    tuned = train_on_service(
        task, spec, base, train, lambda e: build_messages(task.contract, e.input), name, progress
    )
    return PromptPredictor(
        name,
        spec.strategy,
        tuned.model(base, spec.strategy),
        task.contract,
        lambda _: (),
        params={**tuned.params(base), "prompt": "short"},
        setup=tuned.setup(task, base),
    )


def prepare_hybrid(
    task: Task,
    spec: HostedHybridCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
    index: Index | None = None,
) -> RagPredictor:
    """Fine-tune on the service with the retrieving prompts, passages included, exactly as they
    will be served; then answer with the fine-tuned model and retrieval."""
    base = service_base(backend, spec, name)
    index = require_index(index, name)
    demos = stratified_demos(train, spec.demos, task.seed) if spec.demos else []
    rerank = reranker(base, spec.rerank)
    rag = RagPredictor(name, spec.strategy, base, task.contract, index, spec, demos, rerank=rerank)
    tuned = train_on_service(
        task, spec, base, train, lambda e: rag.request(e).messages, name, progress
    )
    setup = tuned.setup(task, base)
    retrieval = retrieval_params(spec, index, demos)
    served = replace(
        rag,
        backend=tuned.model(base, spec.strategy),
        params={**tuned.params(base), **retrieval, "prompt": "retrieving"},
        setup=replace(
            setup, seconds=setup.seconds + index.build_seconds, index=index_record(index)
        ),
    )
    return answering(task, served, train, name, progress)


def service_base(backend: Backend, spec: HostedFineTuningOptions, name: str) -> OpenAICompatible:
    """The base model on its endpoint, or why the candidate cannot run."""
    if not isinstance(backend, OpenAICompatible):
        raise TunewiseError(
            f"candidate '{name}': {spec.strategy} fine-tunes through an endpoint's fine-tuning "
            f"API; '{backend.spec}' is not an endpoint: set its model to a name from the task's "
            "models: section (base_url, api_key_env, the base model id)"
        )
    return backend


def train_on_service(
    task: Task,
    spec: HostedFineTuningOptions,
    base: OpenAICompatible,
    train: Sequence[Example],
    prompt: Prompt,
    name: str,
    progress: Progress | None,
) -> ServiceModel:
    """A seeded train/validation split of train as chat JSONL of `prompt(example)` + answer,
    fine-tuned on the base's service (or the job that already did)."""
    fit, validation = training_split(
        train, task.contract.output_format, max_examples=spec.max_train_examples,
        validation_fraction=spec.validation_fraction, seed=task.seed,
    )  # fmt: skip
    endpoint = base.endpoint
    request = JobRequest(
        base_url=endpoint.base_url,
        model=endpoint.model,
        train=chat_jsonl(fit, prompt),
        validation=chat_jsonl(validation, prompt),
        hyperparameters=spec.hyperparameters(),
        seed=task.seed if spec.seed is None else spec.seed,
        suffix=spec.suffix,
        api_key_env=endpoint.api_key_env,
    )
    job = fine_tune(
        request,
        OpenAIService(endpoint),
        tunewise_home(),
        name=name,
        progress=progress,
        poll_seconds=spec.poll_seconds,
    )
    return ServiceModel(job, len(fit), len(validation))


def chat_jsonl(examples: Sequence[Example], prompt: Prompt) -> str:
    """One conversation a line: the serving prompt, then the answer as the assistant's turn."""
    return "".join(
        json.dumps(
            {"messages": [*prompt(e), {"role": "assistant", "content": e.output}]},
            ensure_ascii=False,
        )
        + "\n"
        for e in examples
    )
