"""Per-example and per-set quality metrics: pure functions of predictions and references."""

from __future__ import annotations

import functools
import json
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
# One fenced block, optionally tagged json; small models often wrap their answer like this.
_FENCE = re.compile(r"^```[ \t]*(?:json)?[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL | re.IGNORECASE)


def _is_punctuation(char: str) -> bool:
    # string.punctuation as in SQuAD, plus Unicode punctuation such as curly quotes and dashes.
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace."""
    lowered = text.lower()
    no_punct = "".join(char for char in lowered if not _is_punctuation(char))
    return " ".join(_ARTICLES.sub(" ", no_punct).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both answers are equal after normalize_answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token-overlap F1 of the normalised answers."""
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    if not pred_tokens or not ref_tokens:
        # Both empty is a correct "no answer"; one empty shares nothing with the other.
        return float(pred_tokens == ref_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


class _Words:
    """rouge-score's tokenizer protocol over SQuAD-normalised words: its own tokenizer keeps
    only ASCII letters and digits, which would score every non-English answer 0."""

    def tokenize(self, text: str) -> list[str]:
        return normalize_answer(text).split()


@functools.cache
def _rouge_l_scorer() -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], tokenizer=_Words())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of words) of the normalised answers, by
    rouge-score: word order counts, unlike token F1, so a reply that says the reference's
    words in its order scores higher than one that scrambles them."""
    said, answer = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not said or not answer:
        return float(said == answer)  # both empty: a correct "no answer", as in token F1
    return float(_rouge_l_scorer().score(reference, prediction)["rougeL"].fmeasure)


def contains_answer(prediction: str, reference: str) -> bool:
    """The normalised reference appears as a whole-word run in the normalised prediction
    ("The euro." contains "Euro"), so a correct but wordy answer is not called a hallucination."""
    answer = normalize_answer(reference).split()
    said = normalize_answer(prediction).split()
    if not answer:
        return not said
    return any(said[i : i + len(answer)] == answer for i in range(len(said) - len(answer) + 1))


def label_correct(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """0/1 per example: the stripped prediction equals the stripped reference."""
    _check_lengths(predictions, references)
    return np.array(
        [float(p.strip() == r.strip()) for p, r in zip(predictions, references, strict=True)],
        dtype=float,
    )


def encode_labels(texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Index of each stripped text in labels; len(labels) for anything outside the set."""
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index.get(text.strip(), len(labels)) for text in texts], dtype=np.int64)


def macro_f1_from_codes(pred_codes: np.ndarray, ref_codes: np.ndarray, n_labels: int) -> float:
    """macro_f1 on encode_labels() codes; fast enough to recompute per bootstrap resample."""
    size = n_labels + 1  # the extra slot collects out-of-set answers and is never averaged
    pred_counts = np.bincount(pred_codes, minlength=size)[:n_labels]
    ref_counts = np.bincount(ref_codes, minlength=size)[:n_labels]
    hits = np.bincount(ref_codes[pred_codes == ref_codes], minlength=size)[:n_labels]
    # Only labels seen in references or predictions count: an unseen class is neither
    # perfect nor zero, it is simply not measured (sklearn's labels= argument).
    present = (pred_counts + ref_counts) > 0
    if not present.any():
        return 0.0
    # F1 = 2tp / (2tp + fp + fn), and 2tp + fp + fn = predicted + actual count of the label.
    f1 = 2 * hits[present] / (pred_counts[present] + ref_counts[present])
    return float(f1.mean())


def macro_f1(predictions: Sequence[str], references: Sequence[str], labels: Sequence[str]) -> float:
    """Per-label F1 averaged over the labels that occur in references or predictions.

    Predictions outside the label set are wrong: a false negative for the reference's label and
    a false positive for nothing. Equals sklearn's f1_score(average="macro", labels=<present
    labels>, zero_division=0).
    """
    _check_lengths(predictions, references)
    return macro_f1_from_codes(
        encode_labels(predictions, labels), encode_labels(references, labels), len(labels)
    )


def load_json(text: str) -> object:
    """Parse an answer as strict JSON, unwrapping one ``` fence; raises ValueError if invalid."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    body = fenced.group(1).strip() if fenced else stripped
    return json.loads(body, parse_constant=_reject_constant)


def _reject_constant(name: str) -> object:
    # Python accepts NaN and Infinity, JSON does not; neither has a canonical form to compare.
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> tuple[bool, object]:
    """(True, value) when the answer is JSON (optionally fenced), else (False, None)."""
    try:
        return True, load_json(text)
    except ValueError:
        return False, None


def _canonical(value: object) -> object:
    # 1 and 1.0 are the same JSON number; True and 1 are not, so bools stay as they are.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def canonical_json(value: object) -> str:
    """One string per JSON value, independent of key order, spacing and 1 vs 1.0."""
    return json.dumps(_canonical(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def json_fields(value: object) -> set[tuple[str, str]]:
    """Flatten a JSON value into (path, canonical leaf) pairs, paths like a.b[0].c.

    Empty objects and arrays are leaves, so {"a": {}} still has a field to match; a scalar at
    the top level has the path "".
    """
    fields: set[tuple[str, str]] = set()
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict) and node:
            prefix = f"{path}." if path else ""
            stack.extend((f"{prefix}{key}", item) for key, item in node.items())
        elif isinstance(node, list) and node:
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(node))
        else:
            fields.add((path, canonical_json(node)))
    return fields


def field_counts(prediction_text: str, reference_text: str) -> tuple[int, int, int]:
    """(tp, fp, fn) over json_fields pairs; an unparsable prediction misses every field.

    The reference must be valid JSON (ValueError otherwise): it is data, not model output.
    """
    ok, reference = parse_json(reference_text)
    if not ok:
        raise ValueError(f"reference is not valid JSON: {reference_text[:80]!r}")
    ref_fields = json_fields(reference)
    parsed, prediction = parse_json(prediction_text)
    if not parsed:
        return 0, 0, len(ref_fields)
    pred_fields = json_fields(prediction)
    tp = len(pred_fields & ref_fields)
    return tp, len(pred_fields) - tp, len(ref_fields) - tp


def field_f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """Micro F1 from summed counts; nothing expected and nothing predicted is perfect."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


def json_exact_match(prediction_text: str, reference_text: str) -> float:
    """1.0 when both parse to the same JSON value (canonical comparison), else 0.0."""
    ok_pred, prediction = parse_json(prediction_text)
    ok_ref, reference = parse_json(reference_text)
    if not (ok_pred and ok_ref):
        return 0.0
    return float(canonical_json(prediction) == canonical_json(reference))


def _check_lengths(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references; they must pair up"
        )
