"""Label probabilities read from a chat answer's token logprobs: labels that share a prefix are
walked token by token, and no mass that begins a label is dropped."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tunewise.models.label_reading import (
    Step,
    constrained_probabilities,
    label_probabilities,
    matching,
    walk,
)

SEARCH = ["search_creative_work", "search_screening_event", "play_music", "get_weather"]


def choice(*steps: tuple[str, float, list[tuple[str, float]]]) -> dict[str, Any]:
    """A chat choice whose logprobs.content holds these (token, logprob, alternatives)."""
    content = [
        {
            "token": token,
            "logprob": logprob,
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alternatives],
        }
        for token, logprob, alternatives in steps
    ]
    text = "".join(token for token, _, _ in steps)
    return {"message": {"content": text}, "logprobs": {"content": content}}


def ln(p: float) -> float:
    return math.log(p)


def test_a_shared_first_token_goes_to_the_label_the_text_names() -> None:
    # Only the first token's logprobs: "search" begins two labels, and the answer names one.
    c = choice(("search", ln(0.7), [("search", ln(0.7)), ("play", ln(0.2)), ("get", ln(0.1))]))
    probabilities = label_probabilities(c, SEARCH, "search_screening_event")
    assert probabilities is not None
    assert max(probabilities, key=probabilities.__getitem__) == "search_screening_event"
    assert probabilities["search_screening_event"] == pytest.approx(0.7)
    assert probabilities["search_creative_work"] == 0.0
    assert probabilities["play_music"] == pytest.approx(0.2)


def test_the_shared_prefix_is_walked_token_by_token() -> None:
    c = choice(
        ("search", ln(0.8), [("search", ln(0.8)), ("play", ln(0.2))]),
        ("_", ln(1.0), [("_", ln(1.0))]),
        ("screen", ln(0.6), [("screen", ln(0.6)), ("creative", ln(0.3)), ("the", ln(0.1))]),
        ("ing", ln(1.0), [("ing", ln(1.0))]),
    )
    probabilities = label_probabilities(c, SEARCH, "search_screening")
    assert probabilities is not None
    total = 0.8 * 0.6 + 0.8 * 0.3 + 0.2  # "the" leads to no label: left out, then normalised
    assert probabilities["search_screening_event"] == pytest.approx(0.8 * 0.6 / total)
    assert probabilities["search_creative_work"] == pytest.approx(0.8 * 0.3 / total)
    assert probabilities["play_music"] == pytest.approx(0.2 / total)


def test_an_alternative_beginning_several_labels_splits_its_mass_evenly() -> None:
    c = choice(("play", ln(0.6), [("play", ln(0.6)), (" search", ln(0.4))]))
    probabilities = label_probabilities(c, SEARCH, "play_music")
    assert probabilities == pytest.approx(
        {"search_creative_work": 0.2, "search_screening_event": 0.2, "play_music": 0.6,
         "get_weather": 0.0}
    )  # fmt: skip


def test_alternatives_spelled_like_the_answer_follow_it() -> None:
    # " search" and "Search" read as the generated "search": their mass follows the answer.
    c = choice(
        ("search", ln(0.5), [("search", ln(0.5)), (" search", ln(0.2)), ("Search", ln(0.1))])
    )
    probabilities = label_probabilities(c, SEARCH, "search_creative_work")
    assert probabilities is not None
    assert probabilities["search_creative_work"] == pytest.approx(1.0)


def test_a_label_that_begins_another_ends_at_a_non_word_character() -> None:
    labels = ["positive", "positive_mixed", "negative"]
    c = choice(
        ("positive", ln(0.9), [("positive", ln(0.9)), ("negative", ln(0.1))]),
        (".", ln(0.7), [(".", ln(0.7)), ("_mixed", ln(0.3))]),
    )
    probabilities = label_probabilities(c, labels, "positive.")
    assert probabilities == pytest.approx(
        {"positive": 0.9 * 0.7, "positive_mixed": 0.9 * 0.3, "negative": 0.1}
    )


def test_opening_quotes_and_spaces_are_skipped() -> None:
    c = choice(
        ('"', ln(0.5), [('"', ln(0.5)), ("neg", ln(0.5))]),
        ("pos", ln(0.9), [("pos", ln(0.9)), ("neu", ln(0.1))]),
    )
    probabilities = label_probabilities(c, ["positive", "negative", "neutral"], '"pos')
    assert probabilities == pytest.approx(
        {"positive": 0.45 / 1.0, "negative": 0.5, "neutral": 0.05}
    )


def test_no_label_anywhere_gives_none() -> None:
    c = choice(("The", ln(0.9), [("The", ln(0.9)), ("I", ln(0.1))]))
    assert label_probabilities(c, SEARCH, "The answer is unclear") is None
    assert label_probabilities({"message": {}}, SEARCH, "x") is None


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("sea", ["search_creative_work", "search_screening_event"]),
        ("play_music", ["play_music"]),
        ("play_music<|im_end|>", ["play_music"]),
        ("play_musical", []),
        ("", []),
    ],
)
def test_matching(text: str, found: list[str]) -> None:
    assert matching(text, SEARCH) == found


def test_logprobs_ending_before_the_labels_part_split_what_the_text_does_not_tell() -> None:
    steps = [Step("search", ln(1.0), ())]
    assert walk(steps, SEARCH, "search") == pytest.approx(
        {"search_creative_work": 0.5, "search_screening_event": 0.5, "play_music": 0.0,
         "get_weather": 0.0}
    )  # fmt: skip


# ---- a JSON answer under a response_format constraint (OpenAI-shaped) ----------------------


def json_choice(label: str, steps: list[tuple[str, float, list[tuple[str, float]]]]) -> Any:
    tokens = [('{"', 0.0, []), ("label", 0.0, []), ('":"', 0.0, []), *steps, ('"}', 0.0, [])]
    c = choice(*tokens)
    assert c["message"]["content"] == json.dumps({"label": label}, separators=(",", ":"))
    return c


def test_a_constrained_json_answer_is_walked_from_its_value() -> None:
    c = json_choice(
        "search_screening_event",
        [
            ("search", ln(0.9), [("search", ln(0.9)), ("play", ln(0.1))]),
            ("_s", ln(0.6), [("_s", ln(0.6)), ("_c", ln(0.4))]),
            ("creening_event", 0.0, []),
        ],
    )
    value, probabilities = constrained_probabilities(c, SEARCH, c["message"]["content"], "label")
    assert value == "search_screening_event"
    assert probabilities == pytest.approx(
        {"search_creative_work": 0.36, "search_screening_event": 0.54, "play_music": 0.1,
         "get_weather": 0.0}
    )  # fmt: skip


def test_a_token_holding_the_opening_quote_and_the_label_is_cut() -> None:
    # Tokenizers may join the value's opening quote to its first piece: ' "search'.
    content = '{"label": "play_music"}'
    c = choice(
        ('{"', 0.0, []),
        ('label":', 0.0, []),
        (' "play', ln(0.7), [(' "play', ln(0.7)), (' "get', ln(0.2)), (" null", ln(0.1))]),
        ('_music"}', 0.0, []),
    )
    assert c["message"]["content"] == content
    value, probabilities = constrained_probabilities(c, SEARCH, content, "label")
    assert value == "play_music"
    assert probabilities == pytest.approx(
        {"play_music": 0.7 / 0.9, "get_weather": 0.2 / 0.9, "search_creative_work": 0.0,
         "search_screening_event": 0.0}
    )  # fmt: skip


def test_an_answer_that_is_not_the_json_shows_the_constraint_was_ignored() -> None:
    c = choice(("play", 0.0, []))
    assert constrained_probabilities(c, SEARCH, "play_music", "label") is None
    assert constrained_probabilities(c, SEARCH, '{"label": "other"}', "label") is None
    # Logprobs that do not spell the text: the label stands, without probabilities.
    assert constrained_probabilities(c, SEARCH, '{"label": "play_music"}', "label") == (
        "play_music",
        None,
    )
