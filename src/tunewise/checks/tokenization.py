"""What one model's tokenizer does to the task's inputs: over-long inputs, inputs that cost
unusually many tokens per character (and tokens per character by script), inputs whose
Unicode normal forms tokenize differently, and special-token strings in user text, with proof
that they cannot end the prompt.

Only the tokenizer is used, never the weights. Token counts are of the input text alone
(`add_special_tokens=False`, as the local backend encodes); the prompt adds its own tokens.
"""

from __future__ import annotations

import statistics
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import groupby
from typing import Any

from tunewise.checks.characters import IDS_SHOWN, Text, id_list, script_of
from tunewise.models.rendering import special_strings

Render = Callable[[str], str]
"""A user text -> the exact prompt text the local backend builds for it."""

TRUNCATION = (
    "tunewise never truncates an input. A local model tokenizes the whole rendered prompt "
    "(no truncation) and runs on every token, so tokens past the context window sit at "
    "positions the model was never trained on: a model with rotary positions (like the "
    "embedded one) still answers, worse; one with learned position embeddings fails. rag and "
    "hybrid prompts leave out passages, then demos, to stay under context_tokens, but never cut "
    "the system prompt or the input. Fine-tuning leaves out (does not cut) training examples "
    "longer than max_length tokens (default 512). tunewise serve refuses inputs over "
    "--max-input-chars (32,000 by default)."
)
# transformers marks "no limit" with a huge sentinel (int(1e30)); anything this large is not real.
NO_LIMIT = 10**9
# An input is token-heavy when it costs more than HEAVY_FACTOR times the data's median tokens
# per character, or at least HEAVY_FLOOR tokens per character (the tokenizer is falling back to
# byte pieces: every character costs a token or more, whatever the rest of the data does).
# Inputs under HEAVY_MIN_CHARS characters are too short for a ratio to mean anything.
HEAVY_FACTOR = 3.0
HEAVY_FLOOR = 1.0
HEAVY_MIN_CHARS = 8
PLACEHOLDER = "x"  # the user text of the template-only prompt in the special-token proof


@dataclass(frozen=True)
class ContextWindow:
    """The model's context window: the smaller of its real limits; None where unknown."""

    tokens: int | None
    max_position_embeddings: int | None
    model_max_length: int | None


def context_window(config: Any, tokenizer: Any) -> ContextWindow:
    """max_position_embeddings (the model's positions) and the tokenizer's model_max_length,
    each kept only when it is a real limit; the window is the smaller of those."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    positions = _real(getattr(text_config, "max_position_embeddings", None))
    model_max = _real(getattr(tokenizer, "model_max_length", None))
    limits = [value for value in (positions, model_max) if value is not None]
    return ContextWindow(min(limits) if limits else None, positions, model_max)


def _real(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 < value < NO_LIMIT else None


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids as LocalModel.encode gives them (special-token strings in `text` count)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenizer_findings(
    tokenizer: Any, texts: Sequence[Text], window: ContextWindow, render: Render
) -> dict[str, Any]:
    """Every tokenizer check on the task's inputs (see the module docstring)."""
    strings = [t.text for t in texts]
    fast = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(strings, add_special_tokens=False, return_offsets_mapping=fast)
    ids: list[list[int]] = [list(row) for row in encoded["input_ids"]]
    offsets = encoded["offset_mapping"] if fast else None
    specials = special_strings(tokenizer)
    special = special_token_findings(tokenizer, texts, render, specials)
    return {
        "special_tokens_defused": special["defused"],
        "context": context_findings(texts, [len(row) for row in ids], window, render, tokenizer),
        "token_heavy": token_heavy(texts, [len(row) for row in ids]),
        "scripts": script_costs(tokenizer, texts, offsets),
        "normalization": normalization_findings(tokenizer, texts, ids),
        "special_tokens": special,
    }


def context_findings(
    texts: Sequence[Text],
    counts: Sequence[int],
    window: ContextWindow,
    render: Render,
    tokenizer: Any,
) -> dict[str, Any]:
    """Inputs longer than the window on their own, and with the zero-shot prompt around them."""
    overhead = len(encode(tokenizer, render(PLACEHOLDER))) - len(encode(tokenizer, PLACEHOLDER))
    limit = window.tokens
    alone = [t.id for t, n in zip(texts, counts, strict=True) if limit and n > limit]
    wrapped = [t.id for t, n in zip(texts, counts, strict=True) if limit and n + overhead > limit]
    return {
        "window": asdict(window),
        "longest_input_tokens": max(counts, default=0),
        "prompt_overhead_tokens": overhead,
        "over_window": id_list(alone),
        "over_window_with_prompt": id_list(wrapped),
        "truncation": TRUNCATION,
    }


def token_heavy(texts: Sequence[Text], counts: Sequence[int]) -> dict[str, Any]:
    """Inputs that cost unusually many tokens per character (thresholds above)."""
    ratios = [n / len(t.text) for t, n in zip(texts, counts, strict=True) if t.text]
    median = statistics.median(ratios) if ratios else 0.0
    threshold = min(HEAVY_FACTOR * median, HEAVY_FLOOR) if median else HEAVY_FLOOR
    heavy = [
        t.id
        for t, n in zip(texts, counts, strict=True)
        if len(t.text) >= HEAVY_MIN_CHARS and n / len(t.text) > threshold
    ]
    return {
        **id_list(heavy),
        "median_tokens_per_char": round(median, 4),
        "threshold_tokens_per_char": round(threshold, 4),
        "rule": f"more than min({HEAVY_FACTOR:g} x the median, {HEAVY_FLOOR:g}) tokens per "
        f"character, among inputs of {HEAVY_MIN_CHARS}+ characters",
    }


def script_costs(
    tokenizer: Any, texts: Sequence[Text], offsets: Sequence[Sequence[tuple[int, int]]] | None
) -> dict[str, dict[str, float]]:
    """Tokens per character by script. A token's cost is shared evenly by the characters its
    offsets cover, so byte pieces of one emoji all land on that emoji; without offsets (a slow
    tokenizer) each run of one script is tokenized on its own."""
    chars: dict[str, int] = {}
    tokens: dict[str, float] = {}
    for index, text in enumerate(texts):
        for char in text.text:
            script = script_of(char)
            chars[script] = chars.get(script, 0) + 1
        for script, share in _token_shares(tokenizer, text.text, offsets, index):
            tokens[script] = tokens.get(script, 0.0) + share
    ordered = sorted(chars, key=lambda script: -chars[script])
    return {
        script: {
            "chars": chars[script],
            "tokens": round(tokens.get(script, 0.0), 1),
            "tokens_per_char": round(tokens.get(script, 0.0) / chars[script], 3),
        }
        for script in ordered
    }


def _token_shares(
    tokenizer: Any, text: str, offsets: Sequence[Sequence[tuple[int, int]]] | None, index: int
) -> list[tuple[str, float]]:
    if offsets is None:
        runs = ["".join(run) for _, run in groupby(text, key=script_of)]
        return [(script_of(run[0]), float(len(encode(tokenizer, run)))) for run in runs]
    shares = []
    for start, end in offsets[index]:
        for char in text[start:end]:  # an empty span (a token of no characters) counts nowhere
            shares.append((script_of(char), 1 / (end - start)))
    return shares


def normalization_findings(
    tokenizer: Any, texts: Sequence[Text], ids: Sequence[Sequence[int]]
) -> dict[str, Any]:
    """Inputs whose NFC or NFKC form tokenizes differently from the raw text: the same-looking
    text would cost or mean something else to the model after normalization."""
    findings = {}
    for form in ("NFC", "NFKC"):
        changed = [
            (index, normal)
            for index, text in enumerate(texts)
            if (normal := unicodedata.normalize(form, text.text)) != text.text
        ]
        differ = [
            texts[index].id for index, normal in changed if encode(tokenizer, normal) != ids[index]
        ]
        findings[form.lower()] = id_list(differ)
    return findings


def special_token_findings(
    tokenizer: Any, texts: Sequence[Text], render: Render, specials: Sequence[str]
) -> dict[str, Any]:
    """Inputs holding the tokenizer's special-token strings, and for each the proof that the
    prompt holds each special token exactly as often as the template alone puts it there. A
    canary input holding every special string proves it even when the data holds none."""
    holders = [t for t in texts if any(s in t.text for s in specials)]
    strings = {s: sum(t.text.count(s) for t in holders) for s in specials}
    proofs = [
        {"id": t.id, **special_token_proof(tokenizer, render, t.text, specials)} for t in holders
    ]
    canary = special_token_proof(tokenizer, render, "canary " + " ".join(specials), specials)
    return {
        **id_list(t.id for t in holders),
        "strings": {s: n for s, n in strings.items() if n},
        "defused": canary["holds"] and all(p["holds"] for p in proofs),
        "canary": canary,
        "not_holding": [p["id"] for p in proofs if not p["holds"]][:IDS_SHOWN],
        "proofs": proofs[:IDS_SHOWN],
    }


def special_token_proof(
    tokenizer: Any, render: Render, text: str, specials: Sequence[str]
) -> dict[str, Any]:
    """Count every special token's id in the encoded prompt for `text` and in the encoded
    prompt for a harmless placeholder: equal counts mean none came from the user text."""
    token_ids = {s: tokenizer.convert_tokens_to_ids(s) for s in specials}
    token_ids = {s: i for s, i in token_ids.items() if isinstance(i, int)}
    prompt = encode(tokenizer, render(text))
    template = encode(tokenizer, render(PLACEHOLDER))
    in_prompt = {s: prompt.count(i) for s, i in token_ids.items()}
    in_template = {s: template.count(i) for s, i in token_ids.items()}
    return {
        "holds": in_prompt == in_template,
        "prompt_counts": {s: n for s, n in in_prompt.items() if n},
        "template_counts": {s: n for s, n in in_template.items() if n},
    }
