"""The strategies tunewise measures, one record each: everything else (the task file's candidate
union, the CLI's --strategies, the framework's families, the results schema's enum, the report's
grouping) is derived from these records.

A third-party strategy is one module and one entry point in the `tunewise.strategies` group
naming its `Strategy` record:

    [project.entry-points."tunewise.strategies"]
    my-strategy = "my_package.my_strategy:STRATEGY"

The module is imported while task files are being validated, so at its top it imports only
`tunewise.strategies.catalog` and `tunewise.strategies.specs`; `prepare` imports what it needs.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module, metadata
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
from pydantic_core import core_schema

from tunewise.errors import TunewiseError
from tunewise.strategies import specs

if TYPE_CHECKING:
    from tunewise.strategies.predictor import Predictor

Family = Literal["prompting", "retrieval", "fine-tuning", "hybrid"]
# The framework's four steps: prompting, adding RAG, fine-tuning, and both.
STEP_OF_FAMILY: dict[str, int] = {"prompting": 1, "retrieval": 2, "fine-tuning": 3, "hybrid": 4}
ENTRY_POINTS = "tunewise.strategies"

# prepare(task, spec, train, backend, name, progress[, index=...]) -> Predictor; the retrieving
# strategies also receive the run's document index.
Prepare = Callable[..., "Predictor"]


@dataclass(frozen=True)
class Strategy:
    """One way of answering a task, and what the framework needs to know about it."""

    name: str  # the `strategy:` value in task.yaml
    family: Family  # which of the framework's steps it belongs to
    spec: type[specs.CandidateSpec]  # its task.yaml settings; `strategy` is Literal[name]
    prepare: str | Prepare  # "module:function" (imported on first use) or the function
    summary: str  # one line, for `tunewise run --help` and the docs
    effort: str  # the report's "technical difficulty" row
    retrieves: bool = False  # needs data.documents; prepare receives index=
    trains: bool = False  # trains an adapter (costs labelled examples and training compute)

    @property
    def step(self) -> int:
        return STEP_OF_FAMILY[self.family]

    def prepare_function(self) -> Prepare:
        if not isinstance(self.prepare, str):
            return self.prepare
        module, _, function = self.prepare.partition(":")
        return typing.cast(Prepare, getattr(import_module(module), function))


BUILT_IN = (
    Strategy(
        "zero-shot",
        "prompting",
        specs.ZeroShotCandidate,
        "tunewise.strategies.zero_shot:prepare",
        "a system prompt built from the contract, then the input",
        "Low",
    ),
    Strategy(
        "few-shot",
        "prompting",
        specs.FewShotCandidate,
        "tunewise.strategies.few_shot:prepare",
        "the zero-shot prompt plus k demonstrations from train",
        "Low",
    ),
    Strategy(
        "optimized-prompt",
        "prompting",
        specs.OptimizedPromptCandidate,
        "tunewise.strategies.optimized_prompt:prepare",
        "instructions x demo sets searched on a validation slice of train",
        "Medium",
    ),
    Strategy(
        "rag",
        "retrieval",
        specs.RagCandidate,
        "tunewise.strategies.rag:prepare",
        "the contract prompt plus passages retrieved from data.documents",
        "Low-medium",
        retrieves=True,
    ),
    Strategy(
        "lora",
        "fine-tuning",
        specs.LoraCandidate,
        "tunewise.strategies.lora:prepare",
        "a LoRA adapter trained on train",
        "High",
        trains=True,
    ),
    Strategy(
        "qlora",
        "fine-tuning",
        specs.LoraCandidate,
        "tunewise.strategies.lora:prepare",
        "LoRA on the base model loaded in 4 bits (CUDA and bitsandbytes)",
        "High",
        trains=True,
    ),
    Strategy(
        "hybrid",
        "hybrid",
        specs.HybridCandidate,
        "tunewise.strategies.hybrid:prepare",
        "a LoRA adapter that answers with retrieved passages in its prompt",
        "High",
        retrieves=True,
        trains=True,
    ),
)

_registered: dict[str, Strategy] = {}
_loaded = False  # the built-in strategies and the plugins' are registered on first use


def register_strategy(strategy: Strategy) -> None:
    """Add a strategy; its spec's `strategy` field must be a Literal that includes its name."""
    _load()
    if strategy.name in _registered:
        raise TunewiseError(f"strategy '{strategy.name}' is registered twice")
    if strategy.family not in STEP_OF_FAMILY:
        raise TunewiseError(
            f"strategy '{strategy.name}': family '{strategy.family}' is not one of "
            f"{', '.join(STEP_OF_FAMILY)}"
        )
    field = strategy.spec.model_fields.get("strategy")
    if field is None or strategy.name not in get_args(field.annotation):
        raise TunewiseError(
            f"strategy '{strategy.name}': {strategy.spec.__name__}.strategy must be "
            f'Literal["{strategy.name}"]'
        )
    _registered[strategy.name] = strategy
    _union.cache_clear()


def unregister_strategy(name: str) -> None:
    _registered.pop(name, None)
    _union.cache_clear()


def _load() -> None:
    """Register the built-in strategies, then those other packages declare under the
    `tunewise.strategies` entry-point group."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for strategy in BUILT_IN:
        register_strategy(strategy)
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken plugin is named, not a traceback in every command
            raise TunewiseError(
                f"strategy plugin '{entry.name}' ({entry.value}) failed to load: {exc}"
            ) from exc
        for strategy in loaded if isinstance(loaded, Iterable) else [loaded]:
            if not isinstance(strategy, Strategy):
                raise TunewiseError(
                    f"strategy plugin '{entry.name}' ({entry.value}) is not a "
                    "tunewise.strategies.catalog.Strategy"
                )
            register_strategy(strategy)


def reload_strategies() -> None:
    """Scan the entry points again: after a plugin is installed into a running process."""
    global _loaded
    _registered.clear()
    _loaded = False
    _union.cache_clear()
    _load()


def strategies() -> dict[str, Strategy]:
    """Every strategy, built-in ones first, in the order the framework's steps take them."""
    _load()
    return dict(sorted(_registered.items(), key=lambda item: item[1].step))


def strategy_names() -> tuple[str, ...]:
    return tuple(strategies())


def strategy_named(name: str) -> Strategy:
    known = strategies()
    if name not in known:
        raise TunewiseError(f"unknown strategy '{name}'; available: {', '.join(known)}")
    return known[name]


def names_where(*, family: str | None = None, **flags: bool) -> frozenset[str]:
    """The strategies of one family and/or with the given flags, e.g. names_where(trains=True)."""
    return frozenset(
        s.name
        for s in strategies().values()
        if (family is None or s.family == family)
        and all(getattr(s, flag) == value for flag, value in flags.items())
    )


def family_of(name: str) -> str:
    return strategy_named(name).family


def default_candidate(name: str) -> specs.CandidateSpec:
    """A strategy's candidate with every setting at its default."""
    return strategy_named(name).spec(strategy=name)


@lru_cache(maxsize=1)
def _union() -> TypeAdapter[Any]:
    classes = tuple(_RegisteredSpecs.members())
    union = Annotated[typing.Union[classes], Field(discriminator="strategy")]  # noqa: UP007
    return TypeAdapter(union)


def parse_candidate(value: Any) -> specs.CandidateSpec:
    """A candidate of any registered strategy, validated by its own spec class."""
    if isinstance(value, specs.CandidateSpec):
        return value
    return typing.cast(specs.CandidateSpec, _union().validate_python(value))


class _RegisteredSpecs:
    """Validates a candidate as the union of the registered strategies' spec classes,
    discriminated by `strategy` and resolved when a task is validated (so strategies registered
    after import count)."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(parse_candidate)

    @classmethod
    def members(cls) -> list[type[specs.CandidateSpec]]:
        """The spec classes a candidate can be, for error messages that list allowed keys."""
        return list(dict.fromkeys(s.spec for s in strategies().values()))

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> Any:
        return handler(_union().core_schema)


# A task file's candidate: typed as the base spec, validated as the registered union.
Candidate = Annotated[specs.CandidateSpec, _RegisteredSpecs]
