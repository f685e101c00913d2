"""What each candidate costs: per request, to set up, per month, over the horizon, and when a
fine-tuned candidate's setup pays for itself against a prompting one (pure arithmetic, no I/O).

Money is USD. A request is priced by tokens when its model has a token price (an API model), else
by measured compute time when a compute price is set, else it is left unpriced (None): a missing
price is reported, never guessed as zero. Break-even falls back to measured compute seconds, which
are always available, when either side of a pair lacks a dollar price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tunewise.core.amounts import _json_number, _money, _seconds, _sig
from tunewise.core.catalog import names_where

_SECONDS_PER_HOUR = 3600.0
_PER_MILLION = 1e6


@dataclass(frozen=True)
class TokenPrice:
    """An API model's price per million tokens."""

    input_per_million: float
    output_per_million: float
    training_per_million: float | None = None  # a fine-tuning service's, per trained token


@dataclass(frozen=True)
class PriceList:
    """The prices the user gave; None (or no token entry) means unknown, not free."""

    compute_usd_per_hour: float | None = None
    labelling_usd_per_example: float | None = None
    # Keyed by model spec; "BASE+fine-tuned" prices the models fine-tuned from BASE.
    tokens: Mapping[str, TokenPrice] = field(default_factory=dict)


@dataclass(frozen=True)
class CostInputs:
    """One candidate's measured usage: means per request, and what its setup took once."""

    name: str
    strategy: str  # zero-shot | few-shot | rag | lora | qlora | hybrid | optimized-prompt
    model: str
    input_tokens_per_request: float
    output_tokens_per_request: float
    compute_seconds_per_request: float  # mean wall time of one answer on the measuring machine
    training_seconds: float = 0.0
    index_seconds: float = 0.0
    search_seconds: float = 0.0  # prompt search
    labelled_examples: int = 0  # training examples a fine-tuned candidate needed labelled
    setup_tokens_input: float = 0.0  # tokens spent during setup on a priced model
    setup_tokens_output: float = 0.0
    remote: bool = (
        False  # served by an API: its time is waiting, not compute we pay for by the hour
    )
    # Distillation: the teacher that labelled the training inputs, priced by its own tokens when
    # it is an API model (teacher_tokens_*), else by its compute time here (teacher_seconds).
    teacher_model: str | None = None
    teacher_seconds: float = 0.0
    teacher_tokens_input: float = 0.0
    teacher_tokens_output: float = 0.0
    # A fine-tuning service's job: the tokens it trained (and bills), at the base model's
    # training price; its wall time is the service's, not compute here.
    trained_tokens: float = 0.0

    @property
    def setup_seconds(self) -> float:
        """Compute spent once before the first request: training, indexing, prompt search and
        a local teacher's labelling."""
        return (
            self.training_seconds + self.index_seconds + self.search_seconds + self.teacher_seconds
        )


@dataclass(frozen=True)
class PricedAmount:
    """An amount in USD (None when unpriced), what it was priced by, and the formula in words."""

    usd: float | None
    basis: str  # "tokens" | "compute" | "unpriced" | "none" | parts joined by "+"
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"usd": _json_number(self.usd), "basis": self.basis, "detail": self.detail}


@dataclass(frozen=True)
class CandidateCost:
    """One candidate's costs at the expected traffic; USD fields are None when unpriced."""

    per_request: PricedAmount
    per_1000_requests_usd: float | None
    setup: PricedAmount
    monthly_usd: float | None
    horizon_usd: float | None
    compute_seconds_per_request: float
    setup_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_request": self.per_request.to_dict(),
            "per_1000_requests_usd": _json_number(self.per_1000_requests_usd),
            "setup": self.setup.to_dict(),
            "monthly_usd": _json_number(self.monthly_usd),
            "horizon_usd": _json_number(self.horizon_usd),
            "compute_seconds_per_request": _json_number(self.compute_seconds_per_request),
            "setup_seconds": _json_number(self.setup_seconds),
        }


@dataclass(frozen=True)
class BreakEven:
    """When a fine-tuned candidate's extra setup is repaid by what it saves per request."""

    tuned: str
    prompt: str
    basis: str  # "usd" | "compute-seconds"
    requests: float  # inf: never
    months: float  # inf: never
    within_horizon: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        numbers = {"requests": _json_number(self.requests), "months": _json_number(self.months)}
        return asdict(self) | numbers


def request_cost(c: CostInputs, prices: PriceList) -> PricedAmount:
    """One request's cost: by tokens when the model (or its base) has a token price, else by
    measured compute time when compute is priced, else unpriced."""
    found = _token_price(c.model, prices)
    if found is not None:
        key, price = found
        usd = _tokens_usd(c.input_tokens_per_request, c.output_tokens_per_request, price)
        detail = _tokens_detail(c.input_tokens_per_request, c.output_tokens_per_request, price)
        return PricedAmount(usd, "tokens", detail + _base_note(key, c.model))
    rate = prices.compute_usd_per_hour
    if c.remote:
        return PricedAmount(
            None,
            "unpriced",
            f"no token price for the API model {c.model}; set prices.tokens or its models: prices",
        )
    if rate is not None:
        seconds = c.compute_seconds_per_request
        return PricedAmount(
            seconds * rate / _SECONDS_PER_HOUR,
            "compute",
            f"{_sig(seconds)} s at {_money(rate)}/hour",
        )
    return PricedAmount(None, "unpriced", f"no token price for {c.model} and no compute price")


def setup_cost(c: CostInputs, prices: PriceList) -> PricedAmount:
    """The one-off cost: setup compute, labelling and setup tokens, each when it is priced.

    A part that has no price is left out of the sum and named in the detail; the amount is None
    only when none of the parts that apply is priced."""
    parts: list[tuple[str, float, str]] = []  # (basis, usd, formula)
    unpriced: list[str] = []
    seconds = c.setup_seconds
    if seconds > 0:
        rate = prices.compute_usd_per_hour
        if rate is None:
            unpriced.append(f"{_sig(seconds)} s of compute")
        else:
            usd = seconds * rate / _SECONDS_PER_HOUR
            parts.append(("compute", usd, f"{_sig(seconds)} s at {_money(rate)}/hour"))
    if c.labelled_examples > 0:
        each = prices.labelling_usd_per_example
        if each is None:
            unpriced.append(f"{c.labelled_examples:,} labelled examples")
        else:
            formula = f"{c.labelled_examples:,} labelled examples at {_money(each)} each"
            parts.append(("labelling", c.labelled_examples * each, formula))
    if c.setup_tokens_input > 0 or c.setup_tokens_output > 0:
        found = _token_price(c.model, prices)
        tokens_in, tokens_out = c.setup_tokens_input, c.setup_tokens_output
        if found is None:
            unpriced.append(f"{_sig(tokens_in)} input + {_sig(tokens_out)} output setup tokens")
        else:
            key, price = found
            formula = "setup " + _tokens_detail(tokens_in, tokens_out, price)
            formula += _base_note(key, c.model)
            parts.append(("tokens", _tokens_usd(tokens_in, tokens_out, price), formula))
    if c.trained_tokens > 0:
        _trained_part(c, prices, parts, unpriced)
    if c.teacher_model and (c.teacher_tokens_input > 0 or c.teacher_tokens_output > 0):
        teacher = _token_price(c.teacher_model, prices)
        tokens_in, tokens_out = c.teacher_tokens_input, c.teacher_tokens_output
        if teacher is None:
            unpriced.append(
                f"{_sig(tokens_in)} input + {_sig(tokens_out)} output tokens of the teacher "
                f"{c.teacher_model}"
            )
        else:
            key, price = teacher
            formula = f"teacher {c.teacher_model} " + _tokens_detail(tokens_in, tokens_out, price)
            formula += _base_note(key, c.teacher_model)
            parts.append(("tokens", _tokens_usd(tokens_in, tokens_out, price), formula))
    if not parts and not unpriced:
        return PricedAmount(0.0, "none", "nothing to set up")
    if not parts:
        return PricedAmount(None, "unpriced", "not priced: " + ", ".join(unpriced))
    detail = " + ".join(f"{formula} ({_money(usd)})" for _, usd, formula in parts)
    if unpriced:
        detail += "; not priced: " + ", ".join(unpriced)
    total = sum(usd for _, usd, _ in parts)
    return PricedAmount(total, "+".join(basis for basis, _, _ in parts), detail)


def _trained_part(
    c: CostInputs,
    prices: PriceList,
    parts: list[tuple[str, float, str]],
    unpriced: list[str],
) -> None:
    """A fine-tuning job's trained tokens at its base model's training price."""
    base = c.model.split("+", 1)[0]
    price = prices.tokens.get(base)
    rate = price.training_per_million if price is not None else None
    if rate is None:
        unpriced.append(
            f"{_sig(c.trained_tokens)} trained tokens (no training_per_million for {base})"
        )
        return
    formula = f"{_sig(c.trained_tokens)} trained tokens at {_money(rate)} per 1M"
    parts.append(("training-tokens", c.trained_tokens * rate / _PER_MILLION, formula))


def monthly_cost(per_request_usd: float, requests_per_month: float) -> float:
    """A month of traffic."""
    return per_request_usd * requests_per_month


def horizon_cost(
    setup_usd: float, per_request_usd: float, requests_per_month: float, months: float
) -> float:
    """Setup once, then `months` of traffic."""
    return setup_usd + monthly_cost(per_request_usd, requests_per_month) * months


def break_even_requests(
    setup_a: float, per_request_a: float, setup_b: float, per_request_b: float
) -> float:
    """Requests after which A (more setup, cheaper per request) costs no more in total than B,
    and stays so. Pure arithmetic: the same for seconds of compute as for dollars.

    0.0 when A is no more expensive to set up and no more expensive per request; inf when A saves
    nothing per request (then it never ends up cheaper for good); never negative."""
    extra_setup = setup_a - setup_b
    saving = per_request_b - per_request_a
    if extra_setup <= 0 and saving >= 0:
        return 0.0
    if saving <= 0:
        return math.inf
    return extra_setup / saving


def cumulative_costs(
    setup_usd: float, per_request_usd: float, requests_per_month: float, months: int
) -> list[float]:
    """Total cost at the end of each month 0..months (month 0 is the setup alone), to plot."""
    if months < 0:
        raise ValueError(f"months must be >= 0, got {months}")
    monthly = monthly_cost(per_request_usd, requests_per_month)
    return [setup_usd + monthly * month for month in range(months + 1)]


def candidate_costs(
    c: CostInputs, prices: PriceList, requests_per_month: float, horizon_months: float
) -> CandidateCost:
    """Per request, per 1,000, setup, monthly and horizon cost of one candidate."""
    per_request = request_cost(c, prices)
    setup = setup_cost(c, prices)
    per_usd = per_request.usd
    monthly = None if per_usd is None else monthly_cost(per_usd, requests_per_month)
    horizon = None
    if per_usd is not None and setup.usd is not None:
        horizon = horizon_cost(setup.usd, per_usd, requests_per_month, horizon_months)
    return CandidateCost(
        per_request=per_request,
        per_1000_requests_usd=None if per_usd is None else per_usd * 1000,
        setup=setup,
        monthly_usd=monthly,
        horizon_usd=horizon,
        compute_seconds_per_request=c.compute_seconds_per_request,
        setup_seconds=c.setup_seconds,
    )


def break_even_table(
    candidates: Sequence[CostInputs],
    prices: PriceList,
    requests_per_month: float,
    horizon_months: float,
) -> list[BreakEven]:
    """Break-even of every fine-tuned candidate against every prompting one, in input order:
    in dollars when all four amounts are priced, else in measured compute seconds."""
    tuned = [c for c in candidates if c.strategy in names_where(trains=True)]
    prompting = [c for c in candidates if c.strategy in names_where(trains=False)]
    costs = {id(c): (request_cost(c, prices), setup_cost(c, prices)) for c in tuned + prompting}
    return [
        _break_even(t, costs[id(t)], p, costs[id(p)], requests_per_month, horizon_months)
        for t in tuned
        for p in prompting
    ]


def _break_even(
    tuned: CostInputs,
    tuned_costs: tuple[PricedAmount, PricedAmount],
    prompt: CostInputs,
    prompt_costs: tuple[PricedAmount, PricedAmount],
    requests_per_month: float,
    horizon_months: float,
) -> BreakEven:
    usd = [amount.usd for amount in (*tuned_costs, *prompt_costs) if amount.usd is not None]
    if len(usd) == 4:  # both per-request and both setup costs are in dollars
        basis, fmt = "usd", _money
        per_a, setup_a, per_b, setup_b = usd
    else:
        basis, fmt = "compute-seconds", _seconds
        setup_a, per_a = tuned.setup_seconds, tuned.compute_seconds_per_request
        setup_b, per_b = prompt.setup_seconds, prompt.compute_seconds_per_request
    requests = break_even_requests(setup_a, per_a, setup_b, per_b)
    if requests == 0:
        months = 0.0
    elif requests_per_month <= 0:
        months = math.inf
    else:
        months = requests / requests_per_month
    within = months <= horizon_months
    a, b = tuned.name, prompt.name
    if requests == 0:
        detail = (
            f"{a} costs no more than {b} to set up ({fmt(setup_a)} vs {fmt(setup_b)}) or per "
            f"request ({fmt(per_a)} vs {fmt(per_b)}): it is cheaper from the first request"
        )
    elif math.isinf(requests):
        detail = f"{a} saves nothing per request against {b} ({fmt(per_a)} vs {fmt(per_b)}): "
        if setup_a > setup_b:
            detail += f"its {fmt(setup_a - setup_b)} of extra setup never pays for itself"
        else:  # cheaper to set up but dearer per request: ahead only until the lines cross
            crossing = (setup_b - setup_a) / (per_a - per_b)
            detail += f"it is cheaper only for the first {crossing:,.0f} requests"
    else:
        extra = "" if setup_b == 0 else "extra "
        detail = (
            f"{a}'s {fmt(setup_a - setup_b)} of {extra}setup pays for itself against {b} after "
            f"{requests:,.0f} requests "
        )
        if requests_per_month <= 0:
            detail += "(never reached at 0 requests/month)"
        else:
            detail += f"({_sig(months, 2)} months at {requests_per_month:,.0f} requests/month)"
            if not within:
                detail += f", beyond the {horizon_months:g}-month horizon"
    if basis == "compute-seconds" and (tuned.remote or prompt.remote):
        detail += " (an API model's seconds are request wall time, not compute; give it a price)"
    return BreakEven(a, b, basis, requests, months, within, detail)


def _token_price(model: str, prices: PriceList) -> tuple[str, TokenPrice] | None:
    """The model's own token price, else, for a model fine-tuned from BASE ('BASE+lora:abc123'),
    the price of BASE's fine-tuned models ('BASE+fine-tuned'), else BASE's."""
    base = model.split("+", 1)[0]
    tuned = (f"{base}+fine-tuned",) if base != model else ()
    for key in (model, *tuned, base):
        price = prices.tokens.get(key)
        if price is not None:
            return key, price
    return None


def _tokens_usd(tokens_in: float, tokens_out: float, price: TokenPrice) -> float:
    return (
        tokens_in * price.input_per_million / _PER_MILLION
        + tokens_out * price.output_per_million / _PER_MILLION
    )


def _tokens_detail(tokens_in: float, tokens_out: float, price: TokenPrice) -> str:
    return (
        f"{_sig(tokens_in)} input + {_sig(tokens_out)} output tokens at "
        f"{_money(price.input_per_million)}/{_money(price.output_per_million)} per 1M"
    )


def _base_note(key: str, model: str) -> str:
    return "" if key == model else f" ({key}'s price)"
