"""Build the shipped example ``examples/country-facts/`` from pycountry's ISO 3166 / ISO 4217 data.

Source: pycountry (LGPL-2.1), which packages Debian's iso-codes: ISO 3166-1 countries, ISO 3166-2
subdivisions and ISO 4217 currencies. The script writes, for every country in
``pycountry.countries``:

* ``documents/<ALPHA3>.md``: one reference document with the country's codes, official name,
  currency and number of top-level subdivisions, in the state *before* the updates in CHANGES;
* ``train.jsonl`` / ``test.jsonl``: questions templated from the same facts, split by country
  (40 seeded test countries; the updated countries always train);
* ``updates/documents/<ALPHA3>.md`` and ``updates/questions.jsonl``: the freshness probe, the
  documents of the updated countries as pycountry has them now and the questions whose answers
  changed, with the old answer as ``previous``.

    python scripts/build_country_facts.py
    python scripts/build_country_facts.py --out /tmp/country-facts

pycountry has no country -> currency map. A country's currency is the ISO 4217 currency with the
country's numeric code (a national currency), or else the curated tables below; where neither
knows it, the document has no currency line and there is no currency question. The output is
deterministic: the same pycountry data always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pycountry

SEED = 0
TEST_COUNTRIES = 40
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "country-facts"


@dataclass(frozen=True)
class Change:
    """One real change between the base snapshot (documents/) and now (updates/documents/)."""

    alpha_2: str
    field: str  # "currency" or "name"
    old: tuple[str, ...]  # currency: (name, ISO 4217 code); name: (short name, official name)
    new: tuple[str, ...]
    date: str


# The updates. Old values pycountry no longer has are hard-coded in the spelling of
# iso-codes as shipped in pycountry 22.3.5; new values are checked against pycountry now.
CHANGES: tuple[Change, ...] = (
    # Croatia joined the euro area: the kuna (HRK) was replaced by the euro.
    Change("HR", "currency", ("Kuna", "HRK"), ("Euro", "EUR"), "1 January 2023"),
    # Bulgaria joined the euro area as its 21st member: the lev (BGN) was replaced by the euro.
    Change("BG", "currency", ("Bulgarian Lev", "BGN"), ("Euro", "EUR"), "1 January 2026"),
    # Sierra Leone redenominated the leone (1,000 old = 1 new): SLL became SLE; the name stays.
    Change("SL", "currency", ("Leone", "SLL"), ("Leone", "SLE"), "1 July 2022"),
    # Zimbabwe replaced the Zimbabwe dollar (ZWL) with Zimbabwe Gold (ZWG).
    Change("ZW", "currency", ("Zimbabwe Dollar", "ZWL"), ("Zimbabwe Gold", "ZWG"), "April 2024"),
    # ISO 3166-1 changed the short name "Turkey" to "Türkiye" (and the official name with it).
    Change(
        "TR",
        "name",
        ("Turkey", "Republic of Turkey"),
        ("Türkiye", "Republic of Türkiye"),
        "June 2022",
    ),
)


def codes(text: str) -> tuple[str, ...]:
    """'AT BE' -> ('AT', 'BE'): the tables below list ISO 3166-1 alpha-2 codes."""
    return tuple(text.split())


# Euro-area members as of 2025 (20). Croatia is among them since 1 January 2023; Bulgaria
# joined on 1 January 2026 (both in CHANGES, so their base documents show the old currency).
EURO_AREA: tuple[str, ...] = codes("AT BE HR CY EE FI FR DE GR IE IT LV LT LU MT NL PT SK SI ES")

# Currencies that ISO 4217 lists for a country but whose numeric code differs from the country's:
# shared currencies, and national currencies renumbered when they were redenominated or replaced.
# Countries left out on purpose (ISO 4217 lists two currencies, or none): Panama (PAB and USD),
# Venezuela (VES and VED), Palestine, Western Sahara, Antarctica, South Georgia and the South
# Sandwich Islands. El Salvador is listed with USD: ISO 4217 still lists the colon (SVC) too, but
# the US dollar has been its currency in practice since 2001.
SHARED_CURRENCIES: dict[str, tuple[str, ...]] = {
    # Euro outside the euro area: microstates, Montenegro, Åland and the French overseas areas.
    "EUR": (*EURO_AREA, *codes("AD MC SM VA ME AX GF GP MQ RE YT BL MF PM TF")),
    # US dollar: the United States' territories, and countries that adopted it.
    "USD": codes("AS BQ EC SV GU IO MH FM MP PW PR TL TC UM VG VI"),
    # West African CFA franc (WAEMU members).
    "XOF": codes("BJ BF CI GW ML NE SN TG"),
    # Central African CFA franc (CEMAC members).
    "XAF": codes("CM CF TD CG GQ GA"),
    # East Caribbean dollar (ECCU members).
    "XCD": codes("AI AG DM GD MS KN LC VC"),
    # CFP franc: the French Pacific territories.
    "XPF": codes("PF NC WF"),
    # Caribbean guilder, which replaced the Netherlands Antillean guilder on 31 March 2025.
    "XCG": codes("CW SX"),
    "AUD": codes("CX CC HM KI NR NF TV"),
    "NZD": codes("CK NU PN TK"),
    "DKK": codes("FO GL"),
    "NOK": codes("BV SJ"),
    "CHF": ("LI",),
    "GBP": codes("GG IM JE"),
    # National currencies whose ISO 4217 numeric code is not the country's.
    "AFN": ("AF",),
    "AOA": ("AO",),
    "AZN": ("AZ",),
    "BAM": ("BA",),
    "BRL": ("BR",),
    "BYN": ("BY",),
    "CDF": ("CD",),
    "ETB": ("ET",),
    "GEL": ("GE",),
    "GHS": ("GH",),
    "MGA": ("MG",),
    "MRU": ("MR",),
    "MZN": ("MZ",),
    "PLN": ("PL",),
    "RON": ("RO",),
    "RSD": ("RS",),
    "SDG": ("SD",),
    "SRD": ("SR",),
    "STN": ("ST",),
    "TJS": ("TJ",),
    "TMT": ("TM",),
    "TRY": ("TR",),
    "TWD": ("TW",),
    "UAH": ("UA",),
    "YER": ("YE",),
    "ZMW": ("ZM",),
}

# Subdivision types whose first word is a proper noun keep their capital letter.
PROPER_FIRST_WORDS = frozenset({"Pakistan"})
# A subdivision type's head noun ends before the first of these (e.g. "City with county rights").
HEAD_ENDS = (" with ", " in ", " under ", " of ", " (", ",")

FIELDS = (
    "name",
    "alpha2",
    "alpha3",
    "numeric",
    "official_name",
    "currency_name",
    "currency_code",
    "subdivisions",
)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "name": (
        "What is the ISO 3166-1 short name of the country with alpha-3 code {alpha3}?",
        "Which country has the ISO 3166-1 alpha-3 code {alpha3}? Give its ISO short name.",
        "Give the ISO 3166-1 short name for the alpha-3 code {alpha3}.",
    ),
    "alpha2": (
        "What is the ISO 3166-1 alpha-2 code of {name}?",
        "Which two-letter ISO code identifies {name}?",
        "Give the ISO 3166-1 alpha-2 country code for {name}.",
    ),
    "alpha3": (
        "What is the ISO 3166-1 alpha-3 code of {name}?",
        "Which three-letter ISO code identifies {name}?",
        "Give the ISO 3166-1 alpha-3 country code for {name}.",
    ),
    "numeric": (
        "What is the ISO 3166-1 numeric code of {name}?",
        "Which three-digit ISO numeric code is assigned to {name}?",
        "Give the ISO 3166-1 numeric country code for {name}.",
    ),
    "official_name": (
        "What is the official name of {name}?",
        "What is the full official name of {name} in ISO 3166-1?",
        "Give the official name of {name}.",
    ),
    "currency_name": (
        "What currency is used in {name}?",
        "What is the name of the currency of {name}?",
        "Which currency does {name} use?",
    ),
    "currency_code": (
        "What is the ISO 4217 code of the currency of {name}?",
        "Which three-letter ISO 4217 currency code does {name} use?",
        "Give the ISO 4217 currency code for {name}.",
    ),
    "subdivisions": (
        "How many top-level subdivisions does {name} have?",
        "What is the number of top-level ISO 3166-2 subdivisions of {name}?",
        "How many first-level ISO 3166-2 subdivisions does {name} have?",
    ),
}


@dataclass(frozen=True)
class Facts:
    """What one document says about one country."""

    alpha_2: str
    alpha_3: str
    numeric: str
    name: str
    official_name: str | None
    currency: tuple[str, str] | None  # (name, ISO 4217 code)
    subdivisions: tuple[tuple[str, int], ...]  # (type, count), most first

    def answers(self) -> dict[str, str]:
        """The answer of every question field this country has, in FIELDS order."""
        values: dict[str, str | None] = {
            "name": self.name,
            "alpha2": self.alpha_2,
            "alpha3": self.alpha_3,
            "numeric": self.numeric,
            "official_name": (self.official_name if self.official_name != self.name else None),
            "currency_name": self.currency[0] if self.currency else None,
            "currency_code": self.currency[1] if self.currency else None,
            "subdivisions": str(self.subdivision_total) if self.subdivisions else None,
        }
        return {field: value for field, value in values.items() if value}

    @property
    def subdivision_total(self) -> int:
        return sum(count for _, count in self.subdivisions)


def pluralise(kind: str, count: int) -> str:
    """'County', 3 -> 'counties'; 'City with county rights', 2 -> 'cities with county rights'."""
    first = kind.split(" ", 1)[0]
    if first not in PROPER_FIRST_WORDS and not first[1:2].isupper():
        kind = kind[0].lower() + kind[1:]
    if count == 1:
        return kind
    cut = min((i for i in (kind.find(end) for end in HEAD_ENDS) if i >= 0), default=len(kind))
    head, tail = kind[:cut], kind[cut:]
    if head.endswith("s") and not head.endswith("ss"):
        plural = head  # already plural in the source, e.g. "Districts under ..."
    elif head.endswith("y") and head[-2:-1] not in "aeiou":
        plural = head[:-1] + "ies"
    elif head.endswith(("s", "x", "z", "ch", "sh")):
        plural = head + "es"
    else:
        plural = head + "s"
    return plural + tail


def join_words(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def currency_table() -> dict[str, tuple[str, str]]:
    """Country alpha-2 -> (currency name, code) as pycountry and the curated tables have it now."""
    by_numeric = {currency.numeric: currency for currency in pycountry.currencies}
    table: dict[str, tuple[str, str]] = {}
    for country in pycountry.countries:
        currency = by_numeric.get(country.numeric)
        if currency is not None:
            table[country.alpha_2] = (currency.name, currency.alpha_3)
    curated: dict[str, str] = {}
    for code, members in sorted(SHARED_CURRENCIES.items()):
        currency = pycountry.currencies.get(alpha_3=code)
        if currency is None:
            raise SystemExit(f"pycountry has no currency {code}")
        for alpha_2 in members:
            if pycountry.countries.get(alpha_2=alpha_2) is None:
                raise SystemExit(f"pycountry has no country {alpha_2} (listed for {code})")
            if alpha_2 in curated:
                raise SystemExit(f"{alpha_2} is listed for both {curated[alpha_2]} and {code}")
            curated[alpha_2] = code
            table[alpha_2] = (currency.name, currency.alpha_3)  # overrides e.g. SV's colon
    return table


def subdivision_counts(alpha_2: str) -> tuple[tuple[str, int], ...]:
    found = pycountry.subdivisions.get(country_code=alpha_2) or []
    counts = Counter(s.type for s in found if s.parent_code is None)
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def current_facts() -> list[Facts]:
    """Every country as pycountry has it now, sorted by alpha-3 code."""
    currencies = currency_table()
    for change in CHANGES:
        country = pycountry.countries.get(alpha_2=change.alpha_2)
        if change.field == "currency":
            name, code = change.new
            currency = pycountry.currencies.get(alpha_3=code)
            if currency is None or currency.name != name:
                raise SystemExit(f"pycountry disagrees with CHANGES: {code} {name!r}")
            if pycountry.currencies.get(alpha_3=change.old[1]) is not None:
                raise SystemExit(f"pycountry still lists {change.old[1]}; check CHANGES")
            currencies[change.alpha_2] = (name, code)
        elif (country.name, country.official_name) != change.new:
            raise SystemExit(f"pycountry disagrees with CHANGES: {change.alpha_2} {change.new}")
    return sorted(
        (
            Facts(
                alpha_2=country.alpha_2,
                alpha_3=country.alpha_3,
                numeric=country.numeric,
                name=country.name,
                official_name=getattr(country, "official_name", None),
                currency=currencies.get(country.alpha_2),
                subdivisions=subdivision_counts(country.alpha_2),
            )
            for country in pycountry.countries
        ),
        key=lambda facts: facts.alpha_3,
    )


def base_facts(facts: Facts) -> Facts:
    """The country as it was before the CHANGES (the base snapshot)."""
    for change in CHANGES:
        if change.alpha_2 != facts.alpha_2:
            continue
        if change.field == "currency":
            facts = replace(facts, currency=(change.old[0], change.old[1]))
        else:
            facts = replace(facts, name=change.old[0], official_name=change.old[1])
    return facts


def document(facts: Facts) -> str:
    lines = [f"# {facts.name}"]
    if facts.official_name:
        lines.append(f"Official name: {facts.official_name}.")
    lines.append(
        f"ISO 3166-1 alpha-2 code: {facts.alpha_2}. Alpha-3 code: {facts.alpha_3}. "
        f"Numeric code: {facts.numeric}."
    )
    if facts.currency:
        lines.append(f"Currency: {facts.currency[0]} (ISO 4217 code {facts.currency[1]}).")
    if facts.subdivisions:
        parts = [f"{count} {pluralise(kind, count)}" for kind, count in facts.subdivisions]
        lines.append(f"Top-level subdivisions: {facts.subdivision_total} — {join_words(parts)}.")
    return "\n".join(lines) + "\n"


def question(facts: Facts, field: str, template: int) -> str:
    return TEMPLATES[field][template].format(name=facts.name, alpha3=facts.alpha_3)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def build(out: Path) -> dict[str, int]:
    now = current_facts()
    base = [base_facts(facts) for facts in now]
    rng = random.Random(SEED)
    # One template per (country, field), drawn in sorted order; update questions reuse it.
    templates = {
        (facts.alpha_3, field): rng.randrange(len(TEMPLATES[field]))
        for facts in base
        for field in FIELDS
    }
    updated = {change.alpha_2 for change in CHANGES}
    pool = [facts.alpha_3 for facts in base if facts.alpha_2 not in updated]
    test = set(rng.sample(pool, TEST_COUNTRIES))

    for owned in ("documents", "updates"):
        shutil.rmtree(out / owned, ignore_errors=True)
    (out / "documents").mkdir(parents=True)
    (out / "updates" / "documents").mkdir(parents=True)

    splits: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    update_questions: list[dict[str, Any]] = []
    for old, new in zip(base, now, strict=True):
        doc_id = f"{old.alpha_3}.md"
        (out / "documents" / doc_id).write_text(document(old), encoding="utf-8")
        split = splits["test" if old.alpha_3 in test else "train"]
        old_answers = old.answers()
        for field, answer in old_answers.items():
            split.append(
                {
                    "id": f"{old.alpha_3}-{field}",
                    "input": question(old, field, templates[old.alpha_3, field]),
                    "output": answer,
                    "doc_id": doc_id,
                }
            )
        if old == new:
            continue
        (out / "updates" / "documents" / doc_id).write_text(document(new), encoding="utf-8")
        new_answers = new.answers()
        if set(new_answers) != set(old_answers):
            raise SystemExit(f"{old.alpha_3}: an update must not add or remove a fact")
        for field, answer in new_answers.items():
            if answer != old_answers[field]:
                update_questions.append(
                    {
                        "id": f"{new.alpha_3}-{field}-updated",
                        "input": question(new, field, templates[new.alpha_3, field]),
                        "output": answer,
                        "previous": old_answers[field],
                        "doc_id": doc_id,
                    }
                )

    counts = {
        "countries": len(base),
        "documents": len(base),
        "train countries": len(base) - len(test),
        "test countries": len(test),
        "train questions": write_jsonl(out / "train.jsonl", splits["train"]),
        "test questions": write_jsonl(out / "test.jsonl", splits["test"]),
        "updated documents": sum(1 for old, new in zip(base, now, strict=True) if old != new),
        "update questions": write_jsonl(out / "updates" / "questions.jsonl", update_questions),
    }
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args()
    for name, count in build(args.out).items():
        print(f"{name}: {count}")


if __name__ == "__main__":
    main()
