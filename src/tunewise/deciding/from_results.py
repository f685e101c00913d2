"""The decision's inputs from measured candidates: each one's quality, usage and priced costs
(the task's prices), handed to the framework's pure decide()."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.core.costs import PriceList, TokenPrice, request_cost, setup_cost
from tunewise.deciding.decide import decide
from tunewise.deciding.verdict import CandidateSummary, Recommendation
from tunewise.errors import TunewiseError
from tunewise.measuring.candidate import CandidateResult, primary_metric
from tunewise.measuring.learning_curve import CurveFit
from tunewise.task.config import Task
from tunewise.task.data import Dataset
from tunewise.task.endpoints import TokenPrices


def price_list(task: Task) -> PriceList:
    """The task's prices as the cost model reads them; a `models:` entry's prices count as
    token prices of its name."""
    prices = task.prices
    tokens = {spec: _price(p) for spec, p in prices.tokens.items()}
    for name, endpoint in task.models.items():
        if endpoint.prices is not None and name not in tokens:
            tokens[name] = _price(endpoint.prices)
        tuned = f"{name}+fine-tuned"
        if endpoint.fine_tuned_prices is not None and tuned not in tokens:
            tokens[tuned] = _price(endpoint.fine_tuned_prices)
    return PriceList(prices.compute_usd_per_hour, prices.labelling_usd_per_example, tokens)


def _price(p: TokenPrices) -> TokenPrice:
    return TokenPrice(p.input_per_million, p.output_per_million, p.training_per_million)


def decide_from(
    task: Task,
    dataset: Dataset,
    results: Sequence[CandidateResult],
    curve: CurveFit | None = None,
) -> Recommendation:
    if not any(r.measured for r in results):
        skipped = "; ".join(f"{r.name}: {r.skipped}" for r in results) or "none ran"
        why = f"no candidate could be measured, so there is nothing to decide ({skipped})"
        raise TunewiseError(why)
    metric = primary_metric(task)
    prices = price_list(task)
    summaries = []
    for r in (r for r in results if r.measured):
        inputs = r.cost_inputs()
        summaries.append(
            CandidateSummary(
                r.name,
                r.strategy,
                r.metrics[metric],
                r.usage["input_tokens_per_request"] + r.usage["output_tokens_per_request"],
                r.usage["latency_p50_ms"],
                inputs.setup_seconds,
                inputs.compute_seconds_per_request,
                setup_cost(inputs, prices).usd,
                request_cost(inputs, prices).usd,
                r.usage["latency_p95_ms"],
                tuple(r.consistency.draws) if r.consistency else (),
            )
        )
    return decide(
        summaries,
        task.target,
        metric,
        train_examples=len(dataset.train),
        has_documents=task.data.documents is not None,
        learning_curve=curve.summary if curve else None,
        requests_per_month=task.usage.requests_per_month,
        horizon_months=task.usage.horizon_months,
    )
