"""Characters that change what a model reads without changing what a person sees, and the
Unicode script of every character (for tokens-per-character by script).

Scripts come from `unicodedata` alone (no extra dependency): emoji by code-point ranges, letters
and marks by the first word of their Unicode name ("LATIN SMALL LETTER A" -> Latin, "CJK UNIFIED
IDEOGRAPH-4E2D" -> CJK, "DEVANAGARI VOWEL SIGN I" -> Devanagari), combining marks without a
script word ("COMBINING ACUTE ACCENT") as "combining marks", everything else by its general
category (digits, whitespace, punctuation, symbols, control/format). That is coarser than the
Unicode Script property (which the standard library lacks) but names the scripts that matter
for token cost.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

IDS_SHOWN = 10  # example ids listed per finding; counts are always complete

ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_CONTROLS = frozenset("\n\t\r")  # ordinary layout, not a hazard

# Blocks whose symbols render as emoji, plus the emoji presentation selector and tag characters
# (subdivision flags). Skin-tone modifiers and regional indicators lie inside 1F000-1FAFF.
EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),
    (0x2600, 0x27BF),
    (0x2B00, 0x2BFF),
    (0xFE0F, 0xFE0F),
    (0xE0020, 0xE007F),
)

_NAMES = (
    "LATIN GREEK CYRILLIC ARMENIAN HEBREW ARABIC SYRIAC THAANA DEVANAGARI BENGALI GURMUKHI "
    "GUJARATI ORIYA TAMIL TELUGU KANNADA MALAYALAM SINHALA THAI LAO TIBETAN MYANMAR GEORGIAN "
    "HANGUL ETHIOPIC CHEROKEE KHMER MONGOLIAN HIRAGANA KATAKANA BOPOMOFO YI"
)
SCRIPT_WORDS = {word: word.title() for word in _NAMES.split()}
SCRIPT_WORDS["CJK"] = "CJK"
OTHER_BUCKETS = {"N": "digits", "P": "punctuation", "S": "symbols", "Z": "whitespace"}


@dataclass(frozen=True)
class Text:
    """One input to check: its example id, split ("train" or "test"), text and, where the
    example carries one, its gold language tag."""

    id: str
    split: str
    text: str
    language: str | None = None


def is_emoji(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in EMOJI_RANGES)


@lru_cache(maxsize=65536)
def script_of(char: str) -> str:
    """The script bucket of one character (see the module docstring for the rules)."""
    if is_emoji(char):
        return "emoji"
    if char.isspace():
        return "whitespace"
    category = unicodedata.category(char)
    if category[0] in "LM":
        words = unicodedata.name(char, "").split()
        if words and words[0] in {"FULLWIDTH", "HALFWIDTH"}:
            words = words[1:]
        if words and words[0] in SCRIPT_WORDS:
            return SCRIPT_WORDS[words[0]]
        return "combining marks" if category[0] == "M" else "other letters"
    return OTHER_BUCKETS.get(category[0], "control/format")


def _hazards(text: str) -> dict[str, list[str]]:
    """Hazardous characters of one text by kind, as U+XXXX codes in order of appearance."""
    found: dict[str, list[str]] = {}
    for index, char in enumerate(text):
        if char in ZERO_WIDTH:
            if char == "\u200d" and _joins_emoji(text, index):
                continue  # a zero-width joiner inside an emoji sequence (family, flags) is normal
            kind = "zero_width"
        elif char in BIDI_CONTROLS:
            kind = "bidi_controls"
        elif unicodedata.category(char) == "Cc" and char not in LINE_CONTROLS:
            kind = "control_characters"
        else:
            continue
        found.setdefault(kind, []).append(f"U+{ord(char):04X}")
    return found


def _joins_emoji(text: str, index: int) -> bool:
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    return bool(before and after) and is_emoji(before) and is_emoji(after)


def character_findings(texts: Sequence[Text]) -> dict[str, Any]:
    """Zero-width characters (U+200B-U+200D, U+2060, U+FEFF; a joiner between two emoji
    excepted), bidirectional controls (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) and other
    control characters (category Cc except \\n, \\t, \\r): per kind, how many inputs hold one,
    which (first ids), and how often each character occurs."""
    kinds = ("zero_width", "bidi_controls", "control_characters")
    holders: dict[str, list[str]] = {kind: [] for kind in kinds}
    tallies: dict[str, dict[str, int]] = {kind: {} for kind in kinds}
    for text in texts:
        for kind, codes in _hazards(text.text).items():
            holders[kind].append(text.id)
            for code in codes:
                tallies[kind][code] = tallies[kind].get(code, 0) + 1
    return {kind: {**id_list(holders[kind]), "characters": tallies[kind]} for kind in kinds}


def id_list(ids: Iterable[str]) -> dict[str, Any]:
    """A finding's usual shape: the full count and the first ids."""
    ids = list(ids)
    return {"count": len(ids), "ids": ids[:IDS_SHOWN]}
