"""The strategies tunewise measures, one record each: everything else (the task file's candidate
union, the CLI's --strategies, the framework's families, the ladder's steps, the learning curve,
the next step, the results schema's enum, the report's grouping) is derived from these records.

Every strategy, built-in or not, is one folder (or module) and one entry point in the
`tunewise.strategies` group naming its `Strategy` record (or a list of them):

    [project.entry-points."tunewise.strategies"]
    my-strategy = "my_package.my_strategy:STRATEGY"

The module is imported while task files are being validated, so at its top it imports only
`tunewise.core.catalog`, `tunewise.core.specs` and `tunewise.core.training_method`;
`prepare` and the hooks are "module:function" strings, imported on first use.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import import_module, metadata
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
from pydantic_core import core_schema

from tunewise.core import specs
from tunewise.core.training_method import TrainingMethod
from tunewise.errors import TunewiseError

Family = Literal["prompting", "retrieval", "fine-tuning", "hybrid"]
# The framework's four steps: prompting, adding RAG, fine-tuning, and both.
STEP_OF_FAMILY: dict[str, int] = {"prompting": 1, "retrieval": 2, "fine-tuning": 3, "hybrid": 4}
ENTRY_POINTS = "tunewise.strategies"

LadderRole = Literal["baseline", "measured", "if-it-fits"]
"""How the default ladder uses a strategy at its step: `baseline` is answered first and times
the step (one per ladder: the first prompting one); `measured` runs whenever its step does;
`if-it-fits` runs when its `fit_to_budget` hook finds room next to the later steps' reserve."""

Requirement = Literal["documents", "labelled-data", "local-weights", "cuda", "fine-tuning-endpoint"]
"""What a strategy needs to run: the task's documents, labelled training examples, a model
whose weights are on this machine (transformers), a CUDA GPU, an endpoint that runs fine-tuning
jobs (OpenAI's fine-tuning API). A strategy that trains needs local weights unless it requires
a fine-tuning endpoint: then the service trains, and nothing is trained here."""

HOOKS: dict[str, str] = {
    "redraws": "(task, spec, *, name, backend, train, measured, test, cache, progress, metric, "
    "judge) -> Consistency | None: the answers again under re-drawn settings, for consistency",
    "fit_to_budget": "(spec, *, seconds, per_answer, train_examples, test_examples) -> Fitted: "
    "the largest settings whose compute fits in `seconds` (None: budget unlimited)",
}
"""The extra measurements and ladder planning a strategy may hook in, by name."""


@dataclass(frozen=True)
class Fitted:
    """What a `fit_to_budget` hook found: the settings to run (None: too little room to say
    anything), their estimate at the task's full settings, and each setting it shrank."""

    spec: specs.CandidateSpec | None
    estimated_seconds: float
    reductions: tuple[tuple[str, int, int], ...] = ()  # (setting, before, after)
    why_not: str = ""  # when spec is None: why, for the ladder's record ("": it does not apply)


# prepare(task, spec, train, backend, name, progress[, index=...]) -> Predictor (the Protocol in
# inference/predictor.py, a layer above this one); the retrieving strategies also receive the
# run's document index.
Prepare = Callable[..., Any]


def _imported(target: str | Callable[..., Any]) -> Callable[..., Any]:
    if not isinstance(target, str):
        return target
    module, _, function = target.partition(":")
    return typing.cast(Callable[..., Any], getattr(import_module(module), function))


@dataclass(frozen=True)
class Strategy:
    """One way of answering a task, and all the rest of tunewise needs to know about it."""

    name: str  # the `strategy:` value in task.yaml
    family: Family  # which of the framework's steps it belongs to
    spec: type[specs.CandidateSpec]  # its task.yaml settings; `strategy` is Literal[name]
    prepare: str | Prepare  # "module:function" (imported on first use) or the function
    summary: str  # one line, for `tunewise run --help` and the docs
    effort: str  # the report's "technical difficulty" row
    retrieves: bool = False  # needs data.documents; prepare receives index=
    trains: bool = False  # trains weights (costs labelled examples and training compute)
    requires: frozenset[Requirement] = frozenset()  # beyond documents (retrieves) and labels
    ladder: LadderRole | None = None  # how the default ladder uses it; None: only when named
    rank: int = 100  # its place within its step: built-in ones first, then plugins
    trainer: TrainingMethod | None = None  # a training strategy's PEFT method (trained here)
    hooks: Mapping[str, str | Callable[..., Any]] = field(default_factory=dict)  # see HOOKS

    @property
    def step(self) -> int:
        return STEP_OF_FAMILY[self.family]

    @property
    def needs(self) -> frozenset[str]:
        """Every requirement, the documents and labelled data of retrieving and training
        strategies included."""
        implied = {"documents"} if self.retrieves else set()
        if self.trains:
            implied |= (
                {"labelled-data"} if self.trains_remotely else {"labelled-data", "local-weights"}
            )
        return frozenset(self.requires | implied)

    @property
    def trains_remotely(self) -> bool:
        """Trained by a fine-tuning service (it requires a fine-tuning endpoint), not here."""
        return self.trains and "fine-tuning-endpoint" in self.requires

    def prepare_function(self) -> Prepare:
        return typing.cast(Prepare, _imported(self.prepare))

    def hook(self, name: str) -> Callable[..., Any] | None:
        """One of its HOOKS, imported; None when the strategy has none by that name."""
        target = self.hooks.get(name)
        return None if target is None else _imported(target)


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
    if strategy.trains and strategy.trainer is None and not strategy.trains_remotely:
        raise TunewiseError(
            f"strategy '{strategy.name}' trains, so its record needs a trainer (or requires a "
            "fine-tuning-endpoint, which trains it)"
        )
    unknown = set(strategy.hooks) - set(HOOKS)
    if unknown:
        raise TunewiseError(
            f"strategy '{strategy.name}': unknown hook '{sorted(unknown)[0]}'; hooks: "
            f"{', '.join(HOOKS)}"
        )
    setting = strategy.spec.model_fields.get("strategy")
    if setting is None or strategy.name not in get_args(setting.annotation):
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
    """Register the strategies declared under the `tunewise.strategies` entry-point group:
    tunewise's own (pyproject.toml) and every installed plugin's, by one path."""
    global _loaded
    if _loaded:
        return
    _loaded = True
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
                    "tunewise.core.catalog.Strategy"
                )
            register_strategy(strategy)


def declared_names() -> list[str]:
    """The entry points declared, without loading them (for help text when one is broken)."""
    return [entry.name for entry in metadata.entry_points(group=ENTRY_POINTS)]


def reload_strategies() -> None:
    """Scan the entry points again: after a plugin is installed into a running process."""
    global _loaded
    _registered.clear()
    _loaded = False
    _union.cache_clear()
    _load()


def strategies() -> dict[str, Strategy]:
    """Every strategy in the order the framework's steps take them (by rank within a step)."""
    _load()
    return dict(sorted(_registered.items(), key=lambda item: (item[1].step, item[1].rank)))


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


def ladder_strategies(family: str) -> list[Strategy]:
    """The strategies of a family the default ladder walks, in their order."""
    return [s for s in strategies().values() if s.family == family and s.ladder is not None]


def first_in_ladder(family: str) -> str:
    """The strategy the ladder walks first in a family (for prompting: its baseline)."""
    walked = ladder_strategies(family)
    if not walked:
        raise TunewiseError(f"no registered strategy of the {family} family is in the ladder")
    return walked[0].name


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
