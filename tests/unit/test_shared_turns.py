"""Which leading turns a batch of conversations computes once (the local model's KV prefix)."""

from __future__ import annotations

from tunewise.models.backend import Message
from tunewise.models.local import shared_turns

SYSTEM: Message = {"role": "system", "content": "Answer with the value only."}


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def test_a_k_shot_batch_shares_everything_but_its_questions() -> None:
    demos = [user("France?"), assistant("Paris")]
    batch = [[SYSTEM, *demos, user("Italy?")], [SYSTEM, *demos, user("Peru?")]]
    assert shared_turns(batch) == 3


def test_repair_conversations_share_the_system_prompt_only() -> None:
    batch = [
        [SYSTEM, user("Italy?"), assistant("The capital of Italy is"), user("Too long.")],
        [SYSTEM, user("Peru?"), assistant("Peru is a country"), user("Too long.")],
    ]
    assert shared_turns(batch) == 1


def test_the_last_turn_is_never_shared_even_when_identical() -> None:
    assert shared_turns([[SYSTEM, user("Italy?")], [SYSTEM, user("Italy?")]]) == 1
    assert shared_turns([[SYSTEM, user("Italy?")]]) == 1
    assert shared_turns([[user("Italy?")]]) == 0


def test_conversations_that_open_differently_share_nothing() -> None:
    other: Message = {"role": "system", "content": "Answer in French."}
    assert shared_turns([[SYSTEM, user("Italy?")], [other, user("Italy?")]]) == 0
    # A shorter conversation bounds the prefix: its last turn stays its own.
    assert shared_turns([[SYSTEM, user("a"), assistant("b"), user("c")], [SYSTEM, user("a")]]) == 1
