"""Fine-tuning: training lint, loss masking and padding, batching, early-stopping signals, and the
LoRA recipe end to end (with checkpoint resume) on a tiny randomly initialised Llama.

Nothing here downloads or loads a real model; the whole file runs in a few seconds on a CPU.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import SENTIMENT_TRAIN, ScriptedBackend, tiny_llama
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

from tunewise.core.catalog import strategy_named
from tunewise.errors import TunewiseError
from tunewise.finetune.batches import computed_tokens, shared_prefix
from tunewise.finetune.examples import (
    IGNORE,
    TrainingLintError,
    TrainingSequence,
    lint_sequences,
    lint_template,
    training_messages,
)
from tunewise.finetune.train import (
    TrainingConfig,
    _load_model,
    collate,
    completion_loss,
    length_grouped_batches,
    overfitting,
    train_adapter,
)
from tunewise.inference.prompts import build_messages
from tunewise.models.local import LocalModel
from tunewise.strategies.lora import LORA, QLORA, LoraCandidate
from tunewise.strategies.lora import adapter as lora
from tunewise.task.config import Contract, LabelFormat
from tunewise.task.data import Example
from tunewise.task.loading import load_task

EOS, PAD = 2, 0
CONTRACT = Contract(
    objective="Classify the sentiment of one product review sentence.",
    audience="Support analysts.",
    source_material="The sentence only.",
    output_format=LabelFormat(type="label", labels=["positive", "negative", "neutral"]),
)
EXAMPLE = Example("train-0", "I love this blender", "positive", "train.jsonl:1")
PROMPT = build_messages(CONTRACT, EXAMPLE.input)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The tiny model gains nothing from threads (and a busy CPU makes them much slower); module
    scope, so that the module-scoped training run below gets it too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sequence(example_id: str, prompt: Sequence[int], answer: Sequence[int]) -> TrainingSequence:
    return TrainingSequence(
        example_id, tuple(prompt) + tuple(answer), (IGNORE,) * len(prompt) + tuple(answer)
    )


# ---- lint: sequences ------------------------------------------------------------------------


def test_lint_sequences_passes_a_good_sequence() -> None:
    lint_sequences([sequence("ok", [5, 6, 7], [9, EOS])], EOS)


def test_lint_sequences_rejects_an_all_masked_target_naming_the_example() -> None:
    good = sequence("ok", [5, 6], [9, EOS])
    masked = TrainingSequence("ex-masked", (5, 6, 9, EOS), (IGNORE,) * 4)
    with pytest.raises(TrainingLintError, match="ex-masked") as caught:
        lint_sequences([good, masked], EOS)
    assert "all-masked" in str(caught.value)


def test_lint_sequences_rejects_a_target_without_eos_naming_the_example() -> None:
    no_eos = sequence("ex-no-eos", [5, 6], [9, 10])
    with pytest.raises(TrainingLintError, match="ex-no-eos") as caught:
        lint_sequences([sequence("ok", [5], [9, EOS]), no_eos], EOS)
    assert "EOS" in str(caught.value)


def test_lint_sequences_rejects_an_eos_that_is_not_the_last_target() -> None:
    with pytest.raises(TrainingLintError, match="ex-eos-early"):
        lint_sequences([sequence("ex-eos-early", [5, 6], [EOS, 9])], EOS)


def test_lint_sequences_rejects_a_tokenizer_without_eos() -> None:
    with pytest.raises(TrainingLintError, match="EOS"):
        lint_sequences([sequence("ok", [5], [9, EOS])], None)


def test_lint_sequences_rejects_an_empty_list() -> None:
    with pytest.raises(TrainingLintError, match="no training examples"):
        lint_sequences([], EOS)


# ---- lint: chat template --------------------------------------------------------------------


class _Tokenizer:
    def __init__(self, chat_template: str | None, eos_token: str | None = "<|im_end|>") -> None:
        self.chat_template = chat_template
        self.eos_token = eos_token


class _TemplateModel:
    """A stand-in for LocalModel.render: ChatML, optionally broken in one of two ways."""

    def __init__(self, broken: str | None = None, chat_template: str | None = "chatml") -> None:
        self.tokenizer = _Tokenizer(chat_template)
        self.broken = broken

    def render(self, messages: Sequence[dict[str, str]], *, answer_next: bool = True) -> str:
        text = ""
        for message in messages:
            role, end = message["role"], "<|im_end|>"
            if role == "assistant" and self.broken == "header":
                role = "model"  # the finished turn sits under another header
            if role == "assistant" and self.broken == "no-eos":
                end = ""  # the finished turn never ends
            text += f"<|im_start|>{role}\n{message['content']}{end}\n"
        return text + ("<|im_start|>assistant\n" if answer_next else "")


def test_lint_template_passes_a_template_that_extends_the_prompt() -> None:
    model = _TemplateModel()
    finished = model.render(training_messages(PROMPT, EXAMPLE), answer_next=False)
    prompt = model.render(build_messages(CONTRACT, EXAMPLE.input))
    assert finished == prompt + "positive<|im_end|>\n"  # the stand-in is what the test claims
    lint_template(model, PROMPT, EXAMPLE)


@pytest.mark.parametrize("broken", ["no-eos", "header"])
def test_lint_template_rejects_a_finished_turn_that_differs_from_inference(broken: str) -> None:
    with pytest.raises(TrainingLintError, match="chat_template") as caught:
        lint_template(_TemplateModel(broken), PROMPT, EXAMPLE)
    message = str(caught.value)
    assert "answer and EOS" in message
    assert "positive<|im_end|>" in message  # shows what was expected


def test_lint_template_skips_a_tokenizer_without_chat_template() -> None:
    lint_template(_TemplateModel("header", chat_template=None), PROMPT, EXAMPLE)
    lint_template(_TemplateModel("no-eos", chat_template=""), PROMPT, EXAMPLE)


def test_training_messages_end_with_the_answer_as_assistant_turn() -> None:
    messages = training_messages(PROMPT, EXAMPLE)
    assert messages[:-1] == build_messages(CONTRACT, EXAMPLE.input)
    assert messages[-1] == {"role": "assistant", "content": "positive"}


# ---- a tiny real causal LM ------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama() -> LlamaForCausalLM:
    return tiny_llama()


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama") / "base"
    tiny_llama().save_pretrained(folder)
    return folder


MIXED = [
    sequence("a", [1, 5, 6, 7, 8, 9, 10], [11, EOS]),
    sequence("b", [1, 12, 13], [14, 15, 16, 17, EOS]),
    sequence("c", [1, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29], [30, EOS]),
    sequence("d", [1, 40], [41, 42, 43, EOS]),
    sequence("e", [1], [50, EOS]),  # shorter than the logits kept: some are padding's
]


def test_collate_left_pads_so_answers_end_at_the_right_edge() -> None:
    batch = collate(MIXED, PAD)
    width = max(len(s.input_ids) for s in MIXED)
    for key in ("input_ids", "attention_mask", "position_ids", "labels"):
        assert batch[key].shape == (len(MIXED), width), key
        assert batch[key].dtype == torch.long, key
    for row, s in enumerate(MIXED):
        pad = width - len(s.input_ids)
        assert batch["input_ids"][row].tolist() == [PAD] * pad + list(s.input_ids)
        assert batch["attention_mask"][row].tolist() == [0] * pad + [1] * len(s.input_ids)
        assert batch["position_ids"][row].tolist() == [0] * pad + list(range(len(s.input_ids)))
        assert batch["labels"][row].tolist() == [IGNORE] * pad + list(s.labels)
        assert batch["labels"][row, -1] == EOS  # every answer ends at the right edge


def test_completion_loss_equals_token_weighted_per_sequence_loss(llama: LlamaForCausalLM) -> None:
    with torch.no_grad():
        batched = float(completion_loss(llama, collate(MIXED, PAD)))
        total = 0.0
        for s in MIXED:
            single = llama(
                input_ids=torch.tensor([s.input_ids]), labels=torch.tensor([s.labels])
            ).loss
            total += float(single) * s.target_tokens
    expected = total / sum(s.target_tokens for s in MIXED)
    assert batched == pytest.approx(expected, abs=1e-5)


def test_completion_loss_of_one_sequence_equals_the_plain_loss(llama: LlamaForCausalLM) -> None:
    for s in MIXED:
        with torch.no_grad():
            ours = float(completion_loss(llama, collate([s], PAD)))
            plain = float(
                llama(input_ids=torch.tensor([s.input_ids]), labels=torch.tensor([s.labels])).loss
            )
        assert ours == pytest.approx(plain, abs=1e-5), s.example_id


def test_completion_loss_ignores_what_the_padding_holds(llama: LlamaForCausalLM) -> None:
    with torch.no_grad():
        zeros = float(completion_loss(llama, collate(MIXED, PAD)))
        other = float(completion_loss(llama, collate(MIXED, 63)))
    assert zeros == pytest.approx(other, abs=1e-6)


def test_completion_loss_depends_on_the_answer(llama: LlamaForCausalLM) -> None:
    changed = [sequence("a2", MIXED[0].input_ids[:-2], [33, EOS]), *MIXED[1:]]
    with torch.no_grad():
        base = float(completion_loss(llama, collate(MIXED, PAD)))
        other = float(completion_loss(llama, collate(changed, PAD)))
    assert base != pytest.approx(other, abs=1e-4)


def test_completion_loss_has_gradients() -> None:
    model = tiny_llama().train()
    loss = completion_loss(model, collate(MIXED, PAD))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.model.embed_tokens.weight.grad is not None


# A system prompt all rows share (tokens 1, 3-8), then each row's own input and answer.
SYSTEM = [1, 3, 4, 5, 6, 7, 8]
PREFIXED = [
    sequence("p", [*SYSTEM, 11, 12], [30, 31, EOS]),
    sequence("q", [*SYSTEM, 13], [32, EOS]),
    sequence("r", [*SYSTEM, 14, 15, 16, 17], [33, EOS]),
    sequence("s", [*SYSTEM, 18], [34, 35, 36, EOS]),
]


def test_shared_prefix_is_the_common_prompt_start() -> None:
    assert shared_prefix(PREFIXED) == len(SYSTEM)
    assert shared_prefix(MIXED[:4]) == 1  # only BOS
    assert shared_prefix(MIXED) == 0  # "e" has nothing before its answer but BOS
    assert shared_prefix([]) == 0


def test_shared_prefix_leaves_each_row_the_token_that_predicts_its_answer() -> None:
    # Identical prompts: the prefix stops one short, so every row keeps its last prompt token.
    same = [sequence("x", [*SYSTEM, 9], [40, EOS]), sequence("y", [*SYSTEM, 9], [41, EOS])]
    assert shared_prefix(same) == len(SYSTEM)
    assert shared_prefix([sequence("z", [1], [50, EOS]), *PREFIXED]) == 0


def test_collate_with_a_prefix_carries_it_once() -> None:
    n = len(SYSTEM)
    batch = collate(PREFIXED, PAD, n)
    assert batch["prefix_ids"].tolist() == [SYSTEM]
    width = max(len(s.input_ids) for s in PREFIXED) - n
    assert batch["input_ids"].shape == (len(PREFIXED), width)
    assert batch["attention_mask"].shape == (len(PREFIXED), n + width)
    for row, s in enumerate(PREFIXED):
        own = len(s.input_ids) - n
        pad = width - own
        assert batch["input_ids"][row].tolist() == [PAD] * pad + list(s.input_ids[n:])
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * pad + [1] * own
        assert batch["position_ids"][row].tolist() == [0] * pad + list(range(n, n + own))
        assert batch["labels"][row].tolist() == [IGNORE] * pad + list(s.labels[n:])
    assert computed_tokens(batch) == n + sum(len(s.input_ids) - n for s in PREFIXED)
    assert computed_tokens(collate(PREFIXED, PAD)) == sum(len(s.input_ids) for s in PREFIXED)


def test_a_shared_prefix_changes_neither_loss_nor_gradients() -> None:
    """The prefix computed once, its cache repeated per row, is the same computation."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        tiny_llama().train(),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"),
    )
    torch.manual_seed(1)
    for p in model.parameters():
        if p.requires_grad:  # LoRA's B starts at zero: give both factors a gradient to show
            torch.nn.init.normal_(p, std=0.1)

    def loss_and_gradients(prefix: int) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        loss = completion_loss(model, collate(PREFIXED, PAD, prefix))
        loss.backward()
        grads = [p.grad.flatten() for p in model.parameters() if p.requires_grad]
        return float(loss.detach()), torch.cat(grads)

    plain_loss, plain_grads = loss_and_gradients(0)
    shared_loss, shared_grads = loss_and_gradients(len(SYSTEM))
    assert shared_loss == pytest.approx(plain_loss, abs=1e-6)
    assert torch.allclose(shared_grads, plain_grads, atol=1e-6)
    assert plain_grads.abs().max() > 1e-3


# ---- batching -------------------------------------------------------------------------------


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


_RNG = random.Random(7)
SKEWED = [int(_RNG.lognormvariate(3.5, 0.9)) + 4 for _ in range(300)]  # a long right tail


@pytest.mark.parametrize(("n", "batch_size"), [(1, 4), (7, 4), (24, 4), (300, 8), (300, 3)])
def test_length_grouped_batches_cover_every_index_once(n: int, batch_size: int) -> None:
    batches = length_grouped_batches(SKEWED[:n], batch_size, seed=0, epoch=0)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(n))
    assert all(1 <= len(batch) <= batch_size for batch in batches)


def test_length_grouped_batches_are_seeded_per_epoch() -> None:
    def run(seed: int, epoch: int) -> list[list[int]]:
        return length_grouped_batches(SKEWED, 4, seed, epoch)

    assert run(0, 0) == run(0, 0)
    assert run(3, 1) == run(3, 1)
    assert run(0, 0) != run(0, 1)
    assert run(0, 0) != run(1, 0)


def test_length_grouped_batches_waste_little_padding() -> None:
    lengths, batch_size = SKEWED, 4
    real = sum(lengths)
    grouped = padded_tokens(lengths, length_grouped_batches(lengths, batch_size, 0, 0))
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    naive = padded_tokens(
        lengths, [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    )
    assert grouped - real < 0.25 * (naive - real), (grouped - real, naive - real)


# ---- overfitting ----------------------------------------------------------------------------


def curve(points: Sequence[tuple[float, float]]) -> list[dict[str, float]]:
    return [
        {"step": i + 1, "epoch": i / 2, "train_loss": t, "validation_loss": v}
        for i, (t, v) in enumerate(points)
    ]


def test_overfitting_needs_three_points() -> None:
    assert not overfitting([])
    assert not overfitting(curve([(2.0, 1.0), (1.0, 5.0)]))


def test_overfitting_false_while_validation_falls() -> None:
    assert not overfitting(curve([(3.0, 3.0), (2.0, 2.5), (1.5, 2.2), (1.0, 2.0)]))


def test_overfitting_true_when_validation_rises_while_training_falls() -> None:
    assert overfitting(curve([(3.0, 3.0), (2.0, 2.0), (1.5, 2.1), (1.0, 2.3)]))


def test_overfitting_ignores_a_rise_within_two_percent() -> None:
    assert not overfitting(curve([(3.0, 3.0), (2.0, 2.0), (1.5, 2.03), (1.0, 2.039)]))


def test_overfitting_false_when_both_losses_rise() -> None:
    assert not overfitting(curve([(3.0, 3.0), (2.0, 2.0), (2.5, 2.3), (3.5, 2.6)]))


# ---- training config ------------------------------------------------------------------------


HYPERPARAMETERS = {
    "r": 8,
    "alpha": 24,
    "dropout": 0.1,
    "target_modules": ["q_proj", "v_proj"],
    "learning_rate": 1e-3,
    "scheduler": "linear",
    "warmup_ratio": 0.1,
    "epochs": 3,
    "batch_size": 6,
    "gradient_accumulation": 2,
    "evaluations_per_epoch": 5,
    "early_stopping_patience": 4,
    "checkpoint_every": 7,
}


@pytest.mark.parametrize("strategy", ["lora", "qlora"])
def test_training_config_carries_every_hyperparameter(strategy: str) -> None:
    spec = LoraCandidate(strategy=strategy, **HYPERPARAMETERS)
    method = strategy_named(strategy).trainer
    assert method is not None
    config = TrainingConfig.from_candidate(spec, 11, method)
    for name, value in HYPERPARAMETERS.items():
        assert getattr(config, name) == value, name
    assert config.seed == 11
    assert config.quantize_4bit is (strategy == "qlora")
    # Every field of the config that the candidate also has comes from the candidate.
    shared = set(TrainingConfig.__dataclass_fields__) & set(LoraCandidate.model_fields)
    assert shared == set(HYPERPARAMETERS)


def test_training_config_autocasts_in_bf16_only_when_asked() -> None:
    spec = LoraCandidate(strategy="lora")
    assert TrainingConfig.from_candidate(spec, 0, LORA).bf16 is False
    assert TrainingConfig.from_candidate(spec, 0, LORA, bf16=True).bf16 is True


def test_training_config_json_is_serialisable_and_changes_with_hyperparameters() -> None:
    config = TrainingConfig.from_candidate(LoraCandidate(strategy="lora"), 0, LORA)
    blob = json.dumps(config.__dict__, sort_keys=True)
    assert json.loads(blob)["target_modules"] == "all-linear"
    other = TrainingConfig.from_candidate(LoraCandidate(strategy="lora", r=4), 0, LORA)
    assert json.dumps(other.__dict__, sort_keys=True) != blob


# ---- train_adapter end to end ---------------------------------------------------------------


def synthetic(n: int, seed: int, prefix: str) -> list[TrainingSequence]:
    """Prompts of varied lengths whose answer is a function of the prompt: learnable."""
    rng = random.Random(seed)
    sequences = []
    for i in range(n):
        prompt = [1] + [rng.randrange(10, 40) for _ in range(rng.randrange(2, 9))]
        label = 40 + prompt[1] % 4
        answer = [label] * rng.randrange(1, 3) + [EOS]
        sequences.append(sequence(f"{prefix}-{i}", prompt, answer))
    return sequences


TRAIN = synthetic(24, seed=1, prefix="train")
VALIDATION = synthetic(8, seed=2, prefix="val")
SPEC = LoraCandidate(
    strategy="lora",
    r=4,
    alpha=8,
    epochs=2,
    batch_size=4,
    evaluations_per_epoch=2,
    early_stopping_patience=3,
    checkpoint_every=2,
    learning_rate=5e-3,
)
CONFIG = TrainingConfig.from_candidate(SPEC, 0, LORA)


class _StopAfter:
    """An `advance` callback that interrupts the run once `limit` steps are done."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.steps = 0

    def __call__(self, n: int) -> None:
        self.steps += n
        if self.limit is not None and self.steps >= self.limit:
            raise KeyboardInterrupt


def train(
    base: Path, root: Path, config: TrainingConfig = CONFIG, advance: Any = None
) -> dict[str, Any]:
    return train_adapter(
        base,
        TRAIN,
        VALIDATION,
        config,
        root / "out",
        root / "work",
        PAD,
        **({"advance": advance} if advance else {}),
    )


@pytest.fixture(scope="module")
def trained(
    base_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("uninterrupted")
    counter = _StopAfter()
    record = train(base_folder, root, advance=counter)
    assert counter.steps == 12
    return root, record


def test_train_adapter_writes_adapter_and_record(trained: tuple[Path, dict[str, Any]]) -> None:
    root, record = trained
    out = root / "out"
    assert (out / "adapter_model.safetensors").is_file()
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4
    assert adapter_config["lora_alpha"] == 8
    assert json.loads((out / "training.json").read_text()) == record
    assert not (root / "work").exists()
    assert record["steps"] == 12
    assert record["examples"] == 24
    assert record["validation_examples"] == 8
    assert record["resumed_from_step"] == 0
    assert record["epochs"] == 2.0
    assert record["stopped_early"] is False
    assert record["target_tokens_per_epoch"] == sum(s.target_tokens for s in TRAIN)
    # 6 batches of 4 per epoch, each computing the shared prefix (BOS) once instead of 4 times.
    assert record["shared_prefix_tokens"] == 1
    assert record["tokens_trained"] == 2 * (sum(len(s.input_ids) for s in TRAIN) - 6 * 3)
    assert record["config"] == CONFIG.__dict__
    assert 0 < record["trainable_parameters"] < record["total_parameters"]


def test_train_adapter_validation_loss_falls(trained: tuple[Path, dict[str, Any]]) -> None:
    _, record = trained
    points = record["loss_curve"]
    # Evaluated every 3 steps of 6 per epoch: steps 3, 6, 9, 12.
    assert [p["step"] for p in points] == [3, 6, 9, 12]
    assert points[-1]["validation_loss"] < points[0]["validation_loss"]
    assert record["best_validation_loss"] == min(p["validation_loss"] for p in points)
    assert record["best_step"] in {p["step"] for p in points}


def test_train_adapter_saves_the_best_weights(
    base_folder: Path, trained: tuple[Path, dict[str, Any]]
) -> None:
    """The saved adapter reproduces the best validation loss it recorded."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, record = trained
    base = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, root / "out").eval()
    with torch.no_grad():
        total = sum(
            float(completion_loss(model, collate(VALIDATION[i : i + 4], PAD)))
            * sum(s.target_tokens for s in VALIDATION[i : i + 4])
            for i in range(0, len(VALIDATION), 4)
        )
    loss = total / sum(s.target_tokens for s in VALIDATION)
    assert loss == pytest.approx(record["best_validation_loss"], abs=1e-4)


def test_train_adapter_in_bf16_autocast_learns_and_records_it(
    base_folder: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    record = train(base_folder, tmp_path, replace(CONFIG, bf16=True))
    assert record["config"]["bf16"] is True
    curve = record["loss_curve"]
    assert curve[-1]["validation_loss"] < curve[0]["validation_loss"]


def test_bf16_training_stores_only_frozen_linear_weights_in_bf16(base_folder: Path) -> None:
    from dataclasses import replace

    model = _load_model(base_folder, replace(CONFIG, bf16=True))
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    lora_weights = [n for n in dtypes if "lora_" in n]
    frozen_linear = [n for n in dtypes if n.endswith("base_layer.weight")]
    assert lora_weights and frozen_linear
    assert all(dtypes[n] == torch.float32 for n in lora_weights)
    assert all(dtypes[n] == torch.bfloat16 for n in frozen_linear)
    assert all(dtypes[n] == torch.float32 for n in dtypes if "norm" in n or "embed" in n)
    plain = _load_model(base_folder, CONFIG)
    assert all(p.dtype == torch.float32 for p in plain.parameters())


def test_train_adapter_stops_early_and_keeps_the_best(base_folder: Path, tmp_path: Path) -> None:
    """With a learning rate too small to help, the second check brings no gain: patience 1
    stops the run there, at step 6 of 12, and the adapter of the first check is kept."""
    config = TrainingConfig(
        **{**CONFIG.__dict__, "learning_rate": 1e-9, "early_stopping_patience": 1}
    )
    counter = _StopAfter()
    record = train(base_folder, tmp_path, config, advance=counter)
    assert record["stopped_early"] is True
    assert record["steps"] == counter.steps == 6
    assert [p["step"] for p in record["loss_curve"]] == [3, 6]
    assert record["best_step"] == 3
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "work").exists()


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def interrupt_and_resume(base: Path, root: Path, config: TrainingConfig) -> dict[str, Any]:
    with pytest.raises(KeyboardInterrupt):
        train(base, root, config, advance=_StopAfter(5))
    checkpoints = sorted(p.name for p in (root / "work").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-4"]  # older ones dropped, no staging left behind
    checkpoint = root / "work" / "checkpoint-4"
    assert (checkpoint / "adapter" / "adapter_model.safetensors").is_file()
    assert (checkpoint / "state.pt").is_file()
    assert not (root / "out").exists()
    counter = _StopAfter()
    record = train(base, root, config, advance=counter)
    assert counter.steps == 12  # the callback is told the 4 restored steps, then 8 new ones
    return record


def test_train_adapter_resume_continues_from_the_checkpoint(
    base_folder: Path, tmp_path: Path
) -> None:
    config = TrainingConfig(**{**CONFIG.__dict__, "dropout": 0.0})
    reference = train(base_folder, tmp_path / "reference", config)
    record = interrupt_and_resume(base_folder, tmp_path / "resumed", config)
    assert record["resumed_from_step"] == 4
    assert record["steps"] == 12
    assert not (tmp_path / "resumed" / "work").exists()
    assert record["tokens_trained"] == reference["tokens_trained"]
    for ours, theirs in zip(record["loss_curve"], reference["loss_curve"], strict=True):
        assert ours == pytest.approx(theirs, abs=1e-5)
    expected = adapter_weights(tmp_path / "reference" / "out")
    got = adapter_weights(tmp_path / "resumed" / "out")
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-6), name


def test_train_adapter_resume_matches_an_uninterrupted_run_with_dropout(
    base_folder: Path, trained: tuple[Path, dict], tmp_path: Path
) -> None:
    reference_root, _ = trained
    assert CONFIG.dropout > 0  # the default: dropout draws from the torch RNG every step
    record = interrupt_and_resume(base_folder, tmp_path, CONFIG)
    assert record["resumed_from_step"] == 4
    assert record["steps"] == 12
    expected = adapter_weights(reference_root / "out")
    got = adapter_weights(tmp_path / "out")
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-6), name


# ---- lora.prepare guards --------------------------------------------------------------------


def test_qlora_unavailable_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    reason = QLORA.unavailable()
    assert reason is not None
    assert "CUDA" in reason


def test_prepare_skips_qlora_without_cuda(tiny_task: Path, base_folder: Path, home: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    task = load_task(tiny_task)
    backend = LocalModel("tiny-llama", base_folder, home)
    examples = [
        Example(f"train-{i}", x, y, "train.jsonl") for i, (x, y) in enumerate(SENTIMENT_TRAIN)
    ]
    with pytest.raises(lora.CandidateSkipped, match="CUDA"):
        lora.prepare(task, LoraCandidate(strategy="qlora"), examples, backend, "qlora")
    assert not (home / "adapters").exists()


@pytest.mark.parametrize("strategy", ["lora", "qlora"])
def test_prepare_needs_a_local_model(tiny_task: Path, strategy: str) -> None:
    task = load_task(tiny_task)
    with pytest.raises(TunewiseError, match=strategy) as caught:
        lora.prepare(task, LoraCandidate(strategy=strategy), [], ScriptedBackend(), "my-adapter")
    assert not isinstance(caught.value, lora.CandidateSkipped)
    assert "my-adapter" in str(caught.value)
    assert "scripted:test" in str(caught.value)
