"""Build the shipped example ``examples/country-facts-multilingual/`` from pycountry.

A variant of ``examples/country-facts/`` whose test questions come in English, German, Spanish
and French. It asks only the question types whose answers do not depend on the language
(ISO 3166-1 alpha-2, alpha-3 and numeric codes, the ISO 4217 currency code and the number of
top-level subdivisions), so scores are comparable across languages; it reuses the facts, the
English question templates and the documents of ``scripts/build_country_facts.py``.

Country names in German, Spanish and French are pycountry's own translations (the gettext
catalogues ``locales/<lang>/LC_MESSAGES/iso3166-1.mo`` from Debian's iso-codes). The script
writes:

* ``train.jsonl``: English questions about every country outside the test set (one template
  drawn per country and field);
* ``test.jsonl``: the same 40 facts (8 per question type, one per test country) asked in each
  of the four languages, 160 questions in all.

Every record is ``{"id", "input", "output", "language", "doc_id"}``. The test countries are
drawn from those whose name is translated (differs from the English one) in all three other
languages, so every non-English question carries a translated name; the five countries of
country-facts' freshness probe are never test countries.

    python scripts/build_country_facts_multilingual.py
    python scripts/build_country_facts_multilingual.py --out /tmp/country-facts-multilingual

No network is needed; the same pycountry data always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import gettext
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pycountry

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_country_facts as country_facts  # a sibling script, not a package

SEED = 0
TEST_COUNTRIES = 40
PER_FIELD = TEST_COUNTRIES // 5
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "country-facts-multilingual"
LANGUAGES = ("en", "de", "es", "fr")
# Question types whose answer is the same string in every language.
FIELDS = ("alpha2", "alpha3", "numeric", "currency_code", "subdivisions")

# Three phrasings per field and language. The translated name is quoted as a label, which reads
# naturally in each language without the article or preposition some names need ("der
# Schweiz", "du Canada") and keeps names such as "Korea, Republik" intact.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {field: country_facts.TEMPLATES[field] for field in FIELDS},
    "de": {
        "alpha2": (
            "Wie lautet der ISO-3166-1-Alpha-2-Code des Landes „{name}“?",
            "Welcher ISO-Code aus zwei Buchstaben bezeichnet das Land „{name}“?",
            "Nennen Sie den ISO-3166-1-Alpha-2-Ländercode für „{name}“.",
        ),
        "alpha3": (
            "Wie lautet der ISO-3166-1-Alpha-3-Code des Landes „{name}“?",
            "Welcher ISO-Code aus drei Buchstaben bezeichnet das Land „{name}“?",
            "Nennen Sie den ISO-3166-1-Alpha-3-Ländercode für „{name}“.",
        ),
        "numeric": (
            "Wie lautet der numerische ISO-3166-1-Code des Landes „{name}“?",
            "Welcher dreistellige numerische ISO-Code ist dem Land „{name}“ zugeordnet?",
            "Nennen Sie den numerischen ISO-3166-1-Ländercode für „{name}“.",
        ),
        "currency_code": (
            "Wie lautet der ISO-4217-Code der Währung des Landes „{name}“?",
            "Welcher ISO-4217-Währungscode aus drei Buchstaben gilt im Land „{name}“?",
            "Nennen Sie den ISO-4217-Währungscode für „{name}“.",
        ),
        "subdivisions": (
            "Wie viele Verwaltungseinheiten der obersten Ebene hat das Land „{name}“?",
            "Wie viele ISO-3166-2-Untergliederungen der ersten Ebene hat das Land „{name}“?",
            "Wie groß ist die Zahl der ISO-3166-2-Untergliederungen der obersten Ebene "
            "des Landes „{name}“?",
        ),
    },
    "es": {
        "alpha2": (
            "¿Cuál es el código ISO 3166-1 alfa-2 del país «{name}»?",
            "¿Qué código ISO de dos letras identifica al país «{name}»?",
            "Indique el código de país ISO 3166-1 alfa-2 de «{name}».",
        ),
        "alpha3": (
            "¿Cuál es el código ISO 3166-1 alfa-3 del país «{name}»?",
            "¿Qué código ISO de tres letras identifica al país «{name}»?",
            "Indique el código de país ISO 3166-1 alfa-3 de «{name}».",
        ),
        "numeric": (
            "¿Cuál es el código numérico ISO 3166-1 del país «{name}»?",
            "¿Qué código numérico ISO de tres dígitos tiene asignado el país «{name}»?",
            "Indique el código numérico de país ISO 3166-1 de «{name}».",
        ),
        "currency_code": (
            "¿Cuál es el código ISO 4217 de la moneda del país «{name}»?",
            "¿Qué código de moneda ISO 4217 de tres letras se usa en el país «{name}»?",
            "Indique el código de moneda ISO 4217 de «{name}».",
        ),
        "subdivisions": (
            "¿Cuántas subdivisiones de primer nivel tiene el país «{name}»?",
            "¿Cuál es el número de subdivisiones ISO 3166-2 de primer nivel del país «{name}»?",
            "¿Cuántas subdivisiones ISO 3166-2 de primer nivel tiene el país «{name}»?",
        ),
    },
    "fr": {
        "alpha2": (
            "Quel est le code ISO 3166-1 alpha-2 du pays « {name} » ?",
            "Quel code ISO à deux lettres désigne le pays « {name} » ?",
            "Indiquez le code pays ISO 3166-1 alpha-2 de « {name} ».",
        ),
        "alpha3": (
            "Quel est le code ISO 3166-1 alpha-3 du pays « {name} » ?",
            "Quel code ISO à trois lettres désigne le pays « {name} » ?",
            "Indiquez le code pays ISO 3166-1 alpha-3 de « {name} ».",
        ),
        "numeric": (
            "Quel est le code numérique ISO 3166-1 du pays « {name} » ?",
            "Quel code numérique ISO à trois chiffres est attribué au pays « {name} » ?",
            "Indiquez le code pays numérique ISO 3166-1 de « {name} ».",
        ),
        "currency_code": (
            "Quel est le code ISO 4217 de la monnaie du pays « {name} » ?",
            "Quel code de devise ISO 4217 à trois lettres correspond au pays « {name} » ?",
            "Indiquez le code de devise ISO 4217 de « {name} ».",
        ),
        "subdivisions": (
            "Combien de subdivisions de premier niveau le pays « {name} » compte-t-il ?",
            "Quel est le nombre de subdivisions ISO 3166-2 de premier niveau du pays « {name} » ?",
            "Combien de subdivisions ISO 3166-2 de premier niveau compte le pays « {name} » ?",
        ),
    },
}

Translate = Callable[[str, str], str]  # (language, English ISO short name) -> name


def pycountry_names() -> Translate:
    """Country names from pycountry's gettext catalogues; English names pass through."""
    catalogues = {
        language: gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        for language in LANGUAGES
        if language != "en"
    }
    return lambda language, name: name if language == "en" else catalogues[language].gettext(name)


def is_translated(name: str, translate: Translate) -> bool:
    """Whether every non-English language has a name of its own for this country."""
    return all(translate(language, name) != name for language in LANGUAGES if language != "en")


def draw_test_facts(
    answers: dict[str, dict[str, str]], eligible: list[str], rng: random.Random
) -> list[tuple[str, str]]:
    """(alpha-3, field) for TEST_COUNTRIES seeded countries, one field each, PER_FIELD per field.

    Fields that fewer test countries have (subdivisions, currency) are filled first, from the
    countries in their drawn order, so every field gets its share."""
    remaining = rng.sample(eligible, TEST_COUNTRIES)

    def having(field: str) -> list[str]:
        return [alpha_3 for alpha_3 in remaining if field in answers[alpha_3]]

    chosen: list[tuple[str, str]] = []
    for field in sorted(FIELDS, key=lambda f: (len(having(f)), FIELDS.index(f))):
        picked = having(field)[:PER_FIELD]
        if len(picked) < PER_FIELD:
            raise SystemExit(f"only {len(picked)} test countries have a {field} answer")
        chosen += [(alpha_3, field) for alpha_3 in picked]
        remaining = [alpha_3 for alpha_3 in remaining if alpha_3 not in picked]
    return sorted(chosen, key=lambda fact: (FIELDS.index(fact[1]), fact[0]))


def record(
    facts: country_facts.Facts, field: str, language: str, template: int, translate: Translate
) -> dict[str, Any]:
    name = translate(language, facts.name)
    return {
        "id": f"{facts.alpha_3}-{field}-{language}",
        "input": TEMPLATES[language][field][template].format(name=name),
        "output": facts.answers()[field],
        "language": language,
        "doc_id": f"{facts.alpha_3}.md",
    }


def build_records(
    base: list[country_facts.Facts], updated: set[str], translate: Translate
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, test) records from the base facts (as country-facts' documents state them)."""
    rng = random.Random(SEED)
    by_alpha_3 = {facts.alpha_3: facts for facts in base}
    answers = {
        facts.alpha_3: {f: a for f, a in facts.answers().items() if f in FIELDS} for facts in base
    }
    eligible = [
        facts.alpha_3
        for facts in base
        if facts.alpha_2 not in updated and is_translated(facts.name, translate)
    ]
    chosen = draw_test_facts(answers, eligible, rng)
    test_countries = {alpha_3 for alpha_3, _ in chosen}
    test = [
        record(by_alpha_3[alpha_3], field, language, rng.randrange(3), translate)
        for language in LANGUAGES
        for alpha_3, field in chosen
    ]
    train = [
        record(facts, field, "en", rng.randrange(3), translate)
        for facts in base
        if facts.alpha_3 not in test_countries
        for field in FIELDS
        if field in answers[facts.alpha_3]
    ]
    return train, test


def build(out: Path) -> dict[str, int]:
    base = [country_facts.base_facts(facts) for facts in country_facts.current_facts()]
    updated = {change.alpha_2 for change in country_facts.CHANGES}
    train, test = build_records(base, updated, pycountry_names())
    out.mkdir(parents=True, exist_ok=True)
    counts = {
        "train questions (en)": country_facts.write_jsonl(out / "train.jsonl", train),
        "test questions": country_facts.write_jsonl(out / "test.jsonl", test),
        "test countries": len({r["doc_id"] for r in test}),
    }
    for language in LANGUAGES:
        counts[f"test questions ({language})"] = sum(r["language"] == language for r in test)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args()
    for name, count in build(args.out).items():
        print(f"{name}: {count}")


if __name__ == "__main__":
    main()
