"""Training sequences for fine-tuning, and the lint that refuses to train on broken ones.

A training sequence is the inference prompt, token for token, followed by the answer and the
end-of-turn token; only the answer tokens carry loss. The lint catches the classic silent
failures: an all-masked target (zero loss), a missing EOS (the model never learns to stop), and a
chat template that renders the finished turn differently from what inference sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.models.backend import Message
from tunewise.task.data import Example

IGNORE = -100  # the label value PyTorch's cross-entropy skips


class TrainingLintError(TunewiseError):
    """Training data would silently train the wrong thing; names the example and the fix."""


@dataclass(frozen=True)
class TrainingSequence:
    example_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE on prompt tokens

    @property
    def target_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def training_messages(prompt: Sequence[Message], example: Example) -> list[Message]:
    """The conversation trained on: the candidate's own request for the input, then the answer."""
    return [*prompt, {"role": "assistant", "content": example.output}]


def encode_example(model: Any, prompt: Sequence[Message], example: Example) -> TrainingSequence:
    """Prompt exactly as at inference (`model.render`), answer as label scoring sees it."""
    rendered = model.render(prompt)
    prompt_ids = model.encode(rendered)
    answer = model.answer_ids(rendered, prompt_ids, example.output)
    return TrainingSequence(
        example.id,
        tuple(prompt_ids + answer),
        tuple([IGNORE] * len(prompt_ids) + answer),
    )


def lint_template(model: Any, prompt: Sequence[Message], example: Example) -> None:
    """The chat template's own rendering of the finished turn must extend the inference prompt
    with the answer and EOS; otherwise training and serving would see different text."""
    tokenizer = model.tokenizer
    if not tokenizer.chat_template:
        return
    rendered = model.render(prompt)
    finished = model.render(training_messages(prompt, example), answer_next=False)
    expected = rendered + example.output + (tokenizer.eos_token or "")
    if not finished.startswith(expected):
        raise TrainingLintError(
            f"training lint: the chat template renders a finished turn as {finished[-80:]!r}, "
            f"which does not continue the inference prompt with the answer and EOS "
            f"({expected[-80:]!r}); fix the model's chat_template"
        )


def lint_sequences(sequences: Sequence[TrainingSequence], eos_id: int | None) -> None:
    """Fail loudly on targets that would train nothing or never teach the model to stop."""
    if not sequences:
        raise TrainingLintError("training lint: no training examples are left to train on")
    for sequence in sequences:
        if sequence.target_tokens == 0:
            raise TrainingLintError(
                f"training lint: example '{sequence.example_id}' has an all-masked target "
                "(no token carries loss); its answer is empty or was cut off"
            )
        targets = [label for label in sequence.labels if label != IGNORE]
        if eos_id is None or targets[-1] != eos_id:
            raise TrainingLintError(
                f"training lint: example '{sequence.example_id}' does not end its target with "
                "the EOS token, so the model would not learn to stop; check the tokenizer's EOS"
            )
