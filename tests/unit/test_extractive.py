"""Extractive answering: the span mask only ever lets an answer copy a passage, word-aligned;
the abstention threshold is the one that scores best on the calibration examples; `answer:
auto` copies spans when the training answers are mostly verbatim in the documents."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEXT_TASK

from tunewise.models.spans import SpanState, tokenize_passages, within
from tunewise.strategies.rag.extractive import abstention_threshold, answer_mode, verbatim_share
from tunewise.task.data import Example
from tunewise.task.loading import load_task

EOS = 0


class WordTokenizer:
    """Byte-level-BPE-like: a word with its leading space is one token, punctuation is its
    own token, and long words split in two (so spans must not end inside a word)."""

    eos_token_id = EOS

    def __init__(self) -> None:
        self.pieces = ["<eos>"]

    def _id(self, piece: str) -> int:
        if piece not in self.pieces:
            self.pieces.append(piece)
        return self.pieces.index(piece)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids = []
        for piece in re.findall(r"\s*\w+|\s*[^\w\s]", text):
            word = piece.strip()
            if len(word) > 6:  # a word in two tokens: "ĠDelam" + "ere"
                split = len(piece) - len(word) + 4
                ids += [self._id(piece[:split]), self._id(piece[split:])]
            else:
                ids.append(self._id(piece))
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids if i != EOS)


PASSAGES = [
    "The 41st Harvest Fair drew 6,200 visitors to Delamere Park on Saturday.",
    "Retired postal carrier Marguerite Olenski won with a sour cherry pie (her third win).",
]


def walk(state: SpanState, rng: random.Random) -> list[int]:
    chosen = []
    while True:
        token = rng.choice(sorted(state.allowed()))
        if token == EOS:
            return chosen
        chosen.append(token)
        state.consume(token)


def test_every_answer_the_mask_allows_is_a_word_aligned_span_of_a_passage() -> None:
    tokenizer = WordTokenizer()
    passages = tokenize_passages(tokenizer, PASSAGES)
    rng = random.Random(0)
    words = {w for p in PASSAGES for w in re.findall(r"\w+", p)}
    for _ in range(300):
        answer = tokenizer.decode(walk(SpanState(passages, EOS), rng)).strip()
        assert answer and any(answer in p for p in PASSAGES), answer
        first, last = re.findall(r"\w+", answer)[:1], re.findall(r"\w+", answer)[-1:]
        # Whole words at both ends ("Delamere", never "Delam"), unless it is only punctuation.
        assert not first or first[0] in words, answer
        assert not last or last[0] in words, answer


def test_the_mask_follows_every_occurrence_and_ends_after_the_longest() -> None:
    tokenizer = WordTokenizer()
    passages = tokenize_passages(tokenizer, ["a red pie and a red hat", "a red pie"])
    state = SpanState(passages, EOS)
    for piece in [" a", " red"]:
        state.consume(tokenizer.encode(piece)[0])
    assert state.allowed() == {tokenizer.encode(" pie")[0], tokenizer.encode(" hat")[0], EOS}
    state.consume(tokenizer.encode(" hat")[0])
    assert state.allowed() == {EOS}  # the passage ends
    assert SpanState(tokenize_passages(tokenizer, []), EOS).allowed() == {EOS}


def test_a_span_is_cut_at_its_token_limit() -> None:
    tokenizer = WordTokenizer()
    passages = tokenize_passages(tokenizer, ["one two three four five six"])
    state = SpanState(passages, EOS, max_tokens=2)
    state.consume(tokenizer.encode(" one")[0])
    state.consume(tokenizer.encode(" two")[0])
    assert state.allowed() == {EOS}


def test_the_threshold_is_the_cut_that_scores_best() -> None:
    # Unsure spans (-3, -2.5) are wrong and the question has no answer: abstaining scores 1.
    confidences = [-0.1, -0.4, -2.5, -3.0]
    answered = [1.0, 0.8, 0.0, 0.0]
    abstained = [0.0, 0.0, 1.0, 1.0]
    assert abstention_threshold(confidences, answered, abstained) == -0.4
    # No abstention helps: never abstain.
    assert abstention_threshold(confidences, [1.0] * 4, [0.0] * 4) == -math.inf
    # Abstaining ties with answering: keep the answers.
    assert abstention_threshold([-1.0], [0.5], [0.5]) == -math.inf


@dataclass
class FakeChunk:
    text: str


@dataclass
class FakeIndex:
    chunks: list[FakeChunk]


def test_the_verbatim_share_ignores_case_and_spacing() -> None:
    index = FakeIndex([FakeChunk("The fair drew 6,200\nvisitors."), FakeChunk("A sour cherry pie")])
    train = [
        Example("a", "q", "6,200 visitors", "f:1"),
        Example("b", "q", "Sour  Cherry", "f:2"),
        Example("c", "q", "a blueberry tart", "f:3"),
        Example("d", "q", "", "f:4"),  # no answer: not counted
    ]
    assert verbatim_share(train, index) == pytest.approx(2 / 3)  # type: ignore[arg-type]
    assert verbatim_share([], index) == 0.0  # type: ignore[arg-type]


def test_auto_copies_spans_only_for_mostly_verbatim_text_answers(
    tiny_task: Path, tmp_path: Path
) -> None:
    labels = load_task(tiny_task)
    (tmp_path / "task.yaml").write_text(TEXT_TASK, encoding="utf-8")
    text = load_task(tmp_path / "task.yaml")
    assert answer_mode(labels, "auto", 1.0) == "free"  # labels are scored, not copied
    assert answer_mode(text, "auto", 0.9) == "extractive"
    assert answer_mode(text, "auto", 0.3) == "free"
    assert answer_mode(text, "free", 0.9) == "free"
    assert answer_mode(labels, "extractive", 0.0) == "extractive"


@pytest.mark.parametrize(
    ("span", "limit", "kept"),
    [
        ("short", 80, "short"),
        ("short", None, "short"),
        ("a b c", 3, "a b"),
        ("abcdef ghi", 8, "abcdef"),  # whole words only
        ("one two, three", 9, "one two"),  # no dangling comma
        ("abcdefghij", 4, "abcd"),  # one word longer than the limit: its first characters
    ],
)
def test_a_span_over_the_formats_limit_keeps_its_first_whole_words(
    span: str, limit: int | None, kept: str
) -> None:
    assert within(span, limit) == kept
    assert span.startswith(kept)  # a prefix of a span is still a span of the passage
