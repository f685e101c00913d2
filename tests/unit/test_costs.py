"""costs: hand-computed per-request, setup, monthly, horizon and break-even amounts."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest

from tunewise.core.costs import (
    BreakEven,
    CostInputs,
    PriceList,
    TokenPrice,
    break_even_requests,
    break_even_table,
    candidate_costs,
    cumulative_costs,
    horizon_cost,
    monthly_cost,
    request_cost,
    setup_cost,
)

API = TokenPrice(input_per_million=0.15, output_per_million=0.60)
PRICES = PriceList(
    compute_usd_per_hour=1.20,
    labelling_usd_per_example=0.10,
    tokens={"gpt-mini": API, "smol": TokenPrice(0.02, 0.04)},
)


def inputs(
    name: str = "zero-shot",
    strategy: str = "zero-shot",
    model: str = "local-model",
    *,
    tokens: tuple[float, float] = (350.0, 8.0),
    seconds: float = 0.412,
    **setup: Any,
) -> CostInputs:
    return CostInputs(name, strategy, model, tokens[0], tokens[1], seconds, **setup)


# ---- request_cost ----------------------------------------------------------------------------


def test_request_priced_by_tokens_when_the_model_has_a_token_price() -> None:
    cost = request_cost(inputs(model="gpt-mini"), PRICES)
    assert cost.basis == "tokens"
    assert cost.usd == pytest.approx(350 * 0.15 / 1e6 + 8 * 0.60 / 1e6)  # 5.73e-5
    assert cost.usd == pytest.approx(5.73e-5)
    assert cost.detail == "350 input + 8 output tokens at $0.15/$0.60 per 1M"


def test_request_priced_by_compute_when_the_model_has_no_token_price() -> None:
    cost = request_cost(inputs(), PRICES)
    assert cost.basis == "compute"
    assert cost.usd == pytest.approx(0.412 * 1.20 / 3600)  # 1.3733e-4
    assert cost.detail == "0.412 s at $1.20/hour"


def test_an_api_model_without_a_token_price_is_unpriced_not_priced_by_the_hour() -> None:
    cost = request_cost(inputs(model="vllm-qwen", remote=True), PRICES)
    assert cost.usd is None and cost.basis == "unpriced"
    assert "vllm-qwen" in cost.detail and "prices" in cost.detail
    priced = request_cost(inputs(model="gpt-mini", remote=True), PRICES)
    assert priced.basis == "tokens"


def test_break_even_in_seconds_says_when_one_side_is_an_api_model() -> None:
    api = inputs("few-shot", "few-shot", "vllm-qwen", seconds=0.9, remote=True)
    tuned = inputs("lora", "lora", "local+lora:1", seconds=0.1, training_seconds=600.0)
    [row] = break_even_table([tuned, api], PriceList(), 1000, 12)
    assert row.basis == "compute-seconds"
    assert "request wall time, not compute" in row.detail


def test_a_fine_tuned_model_falls_back_to_its_base_model_token_price() -> None:
    cost = request_cost(inputs(model="smol+lora:abc123", tokens=(1000, 10)), PRICES)
    assert cost.basis == "tokens"
    assert cost.usd == pytest.approx(1000 * 0.02 / 1e6 + 10 * 0.04 / 1e6)  # 2.04e-5
    assert "(smol's price)" in cost.detail


def test_an_exact_token_price_wins_over_the_base_model_price() -> None:
    prices = PriceList(tokens={"smol": TokenPrice(1, 1), "smol+lora:abc": TokenPrice(2, 4)})
    cost = request_cost(inputs(model="smol+lora:abc", tokens=(1e6, 1e6)), prices)
    assert cost.usd == pytest.approx(6.0)
    assert "price)" not in cost.detail


def test_only_the_part_before_plus_is_a_base_model() -> None:
    cost = request_cost(inputs(model="smol-big"), PRICES)
    assert cost.basis == "compute"


def test_request_unpriced_without_token_or_compute_price() -> None:
    cost = request_cost(inputs(model="x+lora:1"), PriceList())
    assert cost.usd is None
    assert cost.basis == "unpriced"
    assert "x+lora:1" in cost.detail


def test_free_compute_is_priced_at_zero_not_unpriced() -> None:
    cost = request_cost(inputs(), PriceList(compute_usd_per_hour=0.0))
    assert (cost.usd, cost.basis) == (0.0, "compute")


# ---- setup_cost ------------------------------------------------------------------------------


def test_setup_adds_all_compute_seconds_and_labelling() -> None:
    c = inputs(
        "lora",
        "lora",
        training_seconds=767,
        index_seconds=20,
        search_seconds=13,
        labelled_examples=500,
    )
    cost = setup_cost(c, PRICES)
    assert cost.basis == "compute+labelling"
    assert cost.usd == pytest.approx(800 * 1.20 / 3600 + 500 * 0.10)  # 0.2667 + 50
    assert cost.detail == (
        "800 s at $1.20/hour ($0.267) + 500 labelled examples at $0.10 each ($50.00)"
    )


def test_setup_tokens_are_priced_at_the_model_token_price() -> None:
    c = inputs(
        "teacher",
        "lora",
        "gpt-mini",
        training_seconds=3600,
        setup_tokens_input=1e6,
        setup_tokens_output=2e5,
    )
    cost = setup_cost(c, PRICES)
    assert cost.basis == "compute+tokens"
    assert cost.usd == pytest.approx(1.20 + 0.15 + 0.2 * 0.60)  # 1.47
    assert "setup 1,000,000 input + 200,000 output tokens at $0.15/$0.60 per 1M" in cost.detail


def test_setup_tokens_use_the_base_model_price_too() -> None:
    c = inputs("t", "lora", "smol+lora:abc", setup_tokens_input=1e6)
    cost = setup_cost(c, PriceList(tokens=PRICES.tokens))
    assert (cost.basis, cost.usd) == ("tokens", pytest.approx(0.02))
    assert "(smol's price)" in cost.detail


def test_setup_leaves_out_and_names_an_unpriced_part() -> None:
    c = inputs("lora", "lora", training_seconds=767, labelled_examples=500)
    cost = setup_cost(c, PriceList(compute_usd_per_hour=1.20))
    assert cost.basis == "compute"
    assert cost.usd == pytest.approx(767 * 1.20 / 3600)  # 0.2557
    assert cost.detail.endswith("; not priced: 500 labelled examples")


def test_setup_unpriced_when_nothing_that_applies_is_priced() -> None:
    c = inputs("lora", "lora", "gpt-x", training_seconds=767, setup_tokens_output=10)
    cost = setup_cost(c, PriceList(labelling_usd_per_example=0.1))  # nothing labelled
    assert (cost.usd, cost.basis) == (None, "unpriced")
    assert "767 s of compute" in cost.detail and "setup tokens" in cost.detail


def test_setup_is_zero_when_there_is_nothing_to_price() -> None:
    cost = setup_cost(inputs(), PriceList())
    assert (cost.usd, cost.basis) == (0.0, "none")


# ---- monthly, horizon, cumulative --------------------------------------------------------------


def test_monthly_and_horizon_cost() -> None:
    assert monthly_cost(5.73e-5, 20_000) == pytest.approx(1.146)
    assert horizon_cost(50.0, 0.001, 10_000, 12) == pytest.approx(50 + 10 * 12)
    assert horizon_cost(7.0, 0.5, 0, 12) == 7.0


def test_cumulative_costs_start_at_setup_and_grow_monthly() -> None:
    totals = cumulative_costs(10.0, 0.001, 1000, 3)
    assert totals == pytest.approx([10.0, 11.0, 12.0, 13.0])
    assert len(cumulative_costs(0.27, 1e-4, 20_000, 12)) == 13
    big = cumulative_costs(0.27, 1e-4, 20_000, 24)
    assert all(b >= a for a, b in itertools.pairwise(big))
    assert cumulative_costs(5.0, 1.0, 100, 0) == [5.0]
    with pytest.raises(ValueError, match="months"):
        cumulative_costs(5.0, 1.0, 100, -1)


# ---- break_even_requests -------------------------------------------------------------------


def test_break_even_is_extra_setup_over_saving_per_request() -> None:
    assert break_even_requests(767.0, 0.25, 0.0, 0.5) == pytest.approx(3068)  # seconds
    assert break_even_requests(10.0, 0.001, 2.0, 0.003) == pytest.approx(4000)  # dollars


def test_break_even_is_infinite_without_a_saving_per_request() -> None:
    assert break_even_requests(100.0, 0.5, 0.0, 0.5) == math.inf
    assert break_even_requests(100.0, 0.6, 0.0, 0.5) == math.inf
    assert break_even_requests(0.0, 0.6, 100.0, 0.5) == math.inf  # ahead only until lines cross


def test_break_even_is_zero_when_cheaper_on_both() -> None:
    assert break_even_requests(0.0, 0.1, 10.0, 0.5) == 0.0
    assert break_even_requests(10.0, 0.5, 10.0, 0.5) == 0.0


def test_break_even_is_never_negative() -> None:
    values = (0.0, 0.1, 0.5, 10.0, 100.0)
    for setup_a, per_a, setup_b, per_b in itertools.product(values, repeat=4):
        assert break_even_requests(setup_a, per_a, setup_b, per_b) >= 0


def test_the_decision_gate_breaks_even_in_dollars_when_priced_else_in_seconds() -> None:
    from tunewise.deciding.tuning_gate import break_even
    from tunewise.deciding.verdict import CandidateSummary
    from tunewise.evaluation import MetricValue

    quality = MetricValue(0.8, 0.7, 0.9, 100)
    tuned = CandidateSummary("lora", "lora", quality, 10, 5, 767.0, 0.25)
    prompt = CandidateSummary("few-shot", "few-shot", quality, 10, 5, 0.0, 0.5)
    assert break_even(tuned, [prompt]) == (
        "few-shot",
        break_even_requests(767, 0.25, 0, 0.5),
    )
    priced = CandidateSummary("lora", "lora", quality, 10, 5, 767.0, 0.25, 3.0, 0.001)
    rival = CandidateSummary("few-shot", "few-shot", quality, 10, 5, 0.0, 0.5, 0.0, 0.002)
    assert break_even(priced, [rival]) == ("few-shot", pytest.approx(3000))


# ---- candidate_costs -----------------------------------------------------------------------


def test_candidate_costs_priced_by_compute() -> None:
    c = inputs("lora", "lora", seconds=0.3, training_seconds=767)
    cost = candidate_costs(c, PRICES, 20_000, 12)
    assert cost.per_request.usd == pytest.approx(1e-4)  # 0.3 s at $1.20/hour
    assert cost.per_1000_requests_usd == pytest.approx(0.1)
    assert cost.setup.usd == pytest.approx(767 * 1.2 / 3600)  # 0.25567
    assert cost.monthly_usd == pytest.approx(2.0)
    assert cost.horizon_usd == pytest.approx(767 * 1.2 / 3600 + 24.0)
    assert (cost.compute_seconds_per_request, cost.setup_seconds) == (0.3, 767)
    data = cost.to_dict()
    assert data["per_request"] == {
        "usd": 0.0001,
        "basis": "compute",
        "detail": "0.3 s at $1.20/hour",
    }
    assert data["setup"]["usd"] == 0.255667
    assert data["horizon_usd"] == 24.2557
    json.dumps(data, allow_nan=False)


def test_candidate_costs_with_priced_requests_but_unpriced_setup() -> None:
    c = inputs("opt", "optimized-prompt", "gpt-mini", search_seconds=120)
    cost = candidate_costs(c, PriceList(tokens={"gpt-mini": API}), 20_000, 12)
    assert cost.monthly_usd == pytest.approx(5.73e-5 * 20_000)
    assert cost.setup.usd is None
    assert cost.horizon_usd is None
    assert cost.setup_seconds == 120


def test_candidate_costs_unpriced_stay_none_in_json() -> None:
    cost = candidate_costs(inputs(), PriceList(), 10_000, 12)
    data = cost.to_dict()
    assert data["per_request"]["usd"] is None
    assert data["per_1000_requests_usd"] is None
    assert data["monthly_usd"] is None
    assert data["horizon_usd"] is None
    assert data["setup"] == {"usd": 0.0, "basis": "none", "detail": "nothing to set up"}
    assert data["compute_seconds_per_request"] == 0.412
    json.dumps(data, allow_nan=False)


# ---- break_even_table ------------------------------------------------------------------------

ZERO = inputs("zero-shot", "zero-shot", seconds=0.125)
FEW = inputs("few-shot", "few-shot", seconds=0.5)
RAG = inputs("rag", "rag", seconds=0.75, index_seconds=20)
LORA = inputs("lora", "lora", seconds=0.25, training_seconds=767)


def by_pair(rows: list[BreakEven]) -> dict[tuple[str, str], BreakEven]:
    return {(row.tuned, row.prompt): row for row in rows}


def test_table_pairs_only_tuned_with_prompting() -> None:
    qlora = inputs("qlora", "qlora", seconds=0.3, training_seconds=900)
    hybrid = inputs("hybrid", "hybrid", seconds=0.8, training_seconds=900, index_seconds=20)
    opt = inputs("opt", "optimized-prompt", seconds=0.4, search_seconds=60)
    other = inputs("mystery", "distilled", seconds=0.1)
    rows = break_even_table([ZERO, LORA, FEW, qlora, other, RAG, hybrid, opt], PriceList(), 1, 1)
    pairs = [(row.tuned, row.prompt) for row in rows]
    assert pairs == list(
        itertools.product(["lora", "qlora", "hybrid"], ["zero-shot", "few-shot", "rag", "opt"])
    )
    assert all(row.requests >= 0 and row.months >= 0 for row in rows)


def test_table_in_compute_seconds_when_unpriced() -> None:
    rows = by_pair(break_even_table([ZERO, FEW, RAG, LORA], PriceList(), 1000, 2))
    few = rows["lora", "few-shot"]
    assert few.basis == "compute-seconds"
    assert few.requests == pytest.approx(3068)  # 767 s / (0.5 - 0.25) s
    assert few.months == pytest.approx(3.068)
    assert not few.within_horizon
    assert few.detail == (
        "lora's 767 s of setup pays for itself against few-shot after 3,068 requests "
        "(3.1 months at 1,000 requests/month), beyond the 2-month horizon"
    )
    rag = rows["lora", "rag"]
    assert rag.requests == pytest.approx(1494)  # (767 - 20) s / (0.75 - 0.25) s
    assert rag.months == pytest.approx(1.494)
    assert rag.within_horizon
    assert "747 s of extra setup pays for itself against rag after 1,494 requests" in rag.detail
    zero = rows["lora", "zero-shot"]
    assert (zero.requests, zero.months, zero.within_horizon) == (math.inf, math.inf, False)
    assert "saves nothing per request" in zero.detail
    assert "767 s of extra setup never pays for itself" in zero.detail


def test_table_in_dollars_when_every_amount_is_priced() -> None:
    prices = PriceList(compute_usd_per_hour=3.6, tokens={"gpt-mini": TokenPrice(1.0, 2.0)})
    api = inputs("few-shot", "few-shot", "gpt-mini", tokens=(500, 0), seconds=0.1)
    (row,) = break_even_table([api, LORA], prices, 20_000, 12)
    assert row.basis == "usd"
    # $0.767 of training (767 s at $0.001/s) over $0.0005 - $0.00025 saved per request
    assert row.requests == pytest.approx(3068)
    assert row.months == pytest.approx(0.1534)
    assert row.within_horizon
    assert row.detail == (
        "lora's $0.767 of setup pays for itself against few-shot after 3,068 requests "
        "(0.15 months at 20,000 requests/month)"
    )


def test_table_switches_to_seconds_when_one_amount_is_unpriced() -> None:
    prices = PriceList(tokens={"gpt-mini": TokenPrice(1.0, 2.0)})  # no compute price for lora
    api = inputs("few-shot", "few-shot", "gpt-mini", tokens=(500, 0), seconds=0.5)
    (row,) = break_even_table([LORA, api], prices, 20_000, 12)
    assert row.basis == "compute-seconds"
    assert row.requests == pytest.approx(3068)


def test_table_zero_when_tuned_is_cheaper_on_both() -> None:
    reused = inputs("lora", "lora", seconds=0.25)  # no training: an adapter reused
    (row,) = break_even_table([reused, RAG], PriceList(), 0, 12)
    assert (row.requests, row.months, row.within_horizon) == (0.0, 0.0, True)
    assert row.detail.endswith("it is cheaper from the first request")


def test_table_tuned_cheaper_to_set_up_but_dearer_per_request() -> None:
    slow = inputs("lora", "lora", seconds=0.75)
    rag = inputs("rag", "rag", seconds=0.5, index_seconds=20)
    (row,) = break_even_table([slow, rag], PriceList(), 1000, 12)
    assert row.requests == math.inf
    assert "cheaper only for the first 80 requests" in row.detail  # 20 s / 0.25 s


def test_table_without_traffic_never_reaches_break_even() -> None:
    (row,) = break_even_table([LORA, FEW], PriceList(), 0, 12)
    assert row.requests == pytest.approx(3068)
    assert (row.months, row.within_horizon) == (math.inf, False)
    assert row.detail.endswith("(never reached at 0 requests/month)")


def test_break_even_to_dict_is_strict_json() -> None:
    rows = break_even_table([ZERO, FEW, LORA], PriceList(), 1000, 12)
    data = [row.to_dict() for row in rows]
    text = json.dumps(data, allow_nan=False)
    assert data[0]["requests"] is None and data[0]["months"] is None  # never (inf)
    assert data[1]["requests"] == 3068.0
    assert data[1]["within_horizon"] is True
    assert json.loads(text) == data
