"""Build the shipped example ``examples/address-extraction/`` from usaddress's labelled addresses.

Source: the usaddress 0.5.16 source distribution on PyPI (MIT licence, (c) 2014 The Atlanta
Journal Constitution; maintained by DataMade). Its ``training/labeled.xml`` holds 1,513 US
addresses, each token tagged with one of 29 labels of the US address standard (FGDC), e.g.
``<AddressNumber>219</AddressNumber> <StreetName>Dearborn</StreetName>``. This script turns
each address into a text -> JSON example: the input is the address as written; the output holds
one string field per group of tags (FIELDS, TAG_FIELDS below), each the tokens of that group as
written, with separating commas and semicolons trimmed from its ends. It drops intersections and
addresses whose field would be split in two, dedupes identical inputs, and writes a seeded split
to ``examples/address-extraction/{train,test}.jsonl``.

    python scripts/build_address_extraction.py                  # downloads the archive with pip
    python scripts/build_address_extraction.py --archive usaddress-0.5.16.tar.gz

The output is deterministic: the same archive always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sdist  # a sibling module, not a package

PACKAGE = "usaddress==0.5.16"
ARCHIVE_SHA256 = "f7e614e2489c159cf85be1b6f86edbfaf329dbeedef4d002a025757afd1ec6c6"
LABELLED = "training/labeled.xml"
TEST_SIZE = 200
SEED = 0
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "address-extraction"

# The JSON fields, in the order an answer lists them, with a short description for the schema.
FIELDS: dict[str, str] = {
    "recipient": "person, company or department the mail is for",
    "building_name": "named building, complex or landmark",
    "address_number": "house number, with any prefix or suffix",
    "street_name_pre_directional": "direction before the street name",
    "street_name": "street name, with any leading modifier or type",
    "street_type": "street type after the name",
    "street_name_post_directional": "direction after the street name",
    "unit": "apartment, suite, floor or room",
    "subaddress": "building, wing or tower within the site",
    "po_box": "post office box or rural route",
    "city": "city or town",
    "state": "state",
    "zip_code": "ZIP code",
    "country": "country",
}

# usaddress tag -> JSON field. Tags that share a field are joined in the order they are written.
TAG_FIELDS: dict[str, str] = {
    "Recipient": "recipient",
    "BuildingName": "building_name",
    "LandmarkName": "building_name",
    "AddressNumberPrefix": "address_number",
    "AddressNumber": "address_number",
    "AddressNumberSuffix": "address_number",
    "StreetNamePreDirectional": "street_name_pre_directional",
    "StreetNamePreModifier": "street_name",
    "StreetNamePreType": "street_name",
    "StreetName": "street_name",
    "StreetNamePostType": "street_type",
    "StreetNamePostModifier": "street_type",
    "StreetNamePostDirectional": "street_name_post_directional",
    "OccupancyType": "unit",
    "OccupancyIdentifier": "unit",
    "SubaddressType": "subaddress",
    "SubaddressIdentifier": "subaddress",
    "USPSBoxGroupType": "po_box",
    "USPSBoxGroupID": "po_box",
    "USPSBoxType": "po_box",
    "USPSBoxID": "po_box",
    "PlaceName": "city",
    "StateName": "state",
    "ZipCode": "zip_code",
    "ZipPlus4": "zip_code",
    "CountryName": "country",
}
# Text that is not part of the address: it stays in the input and goes into no field.
IGNORED_TAGS = frozenset({"NotAddress"})
# Two streets meeting: the one-street schema cannot hold them, so these addresses are dropped.
INTERSECTION_TAGS = frozenset({"IntersectionSeparator", "CornerOf"})
# Separators trimmed from both ends of a field value ("Evanston," -> "Evanston").
EDGE_PUNCTUATION = ",;:"


@dataclass(frozen=True)
class Address:
    """One labelled address: its tokens as written, each with its usaddress tag."""

    number: int  # 1-based position in labeled.xml
    tokens: tuple[tuple[str, str], ...]  # (tag, token)

    @property
    def text(self) -> str:
        return " ".join(token for _, token in self.tokens)


@dataclass(frozen=True)
class Example:
    """One text -> JSON example, as written to JSONL."""

    id: str
    input: str
    output: dict[str, str]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, help=f"an already-downloaded {PACKAGE} sdist")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    return parser.parse_args(argv)


def read_labelled(archive_path: Path) -> bytes:
    """The bytes of training/labeled.xml inside the sdist."""
    with tarfile.open(archive_path, "r:gz") as archive:
        members = [
            m for m in archive.getmembers() if m.isfile() and m.name.endswith("/" + LABELLED)
        ]
        if len(members) != 1:
            raise SystemExit(f"expected one {LABELLED} in the archive, found {len(members)}")
        handle = archive.extractfile(members[0])
        assert handle is not None  # a regular file always has a handle
        return handle.read()


def parse_addresses(xml: bytes) -> list[Address]:
    """Every <AddressString> of an <AddressCollection>, in file order. Whitespace inside and
    between tokens is normalised to single spaces; empty tokens are skipped."""
    root = ET.fromstring(xml)
    addresses = []
    for number, element in enumerate(root.iter("AddressString"), start=1):
        tokens = tuple(
            (child.tag, word) for child in element for word in (child.text or "").split()
        )
        addresses.append(Address(number=number, tokens=tokens))
    return addresses


def trim(value: str) -> str:
    return value.strip().strip(EDGE_PUNCTUATION).strip()


def fields_of(address: Address) -> tuple[dict[str, str] | None, str | None]:
    """(fields in FIELDS order, None), or (None, why the address is dropped).

    Adjacent tokens of one field form a run; a field must be one run, so that its value is a
    piece of the input as written."""
    runs: list[tuple[str | None, list[str]]] = []
    for tag, token in address.tokens:
        if tag in INTERSECTION_TAGS:
            return None, "intersection"
        if tag not in TAG_FIELDS and tag not in IGNORED_TAGS:
            return None, f"unknown tag {tag}"
        field = TAG_FIELDS.get(tag)
        if runs and runs[-1][0] == field:
            runs[-1][1].append(token)
        else:
            runs.append((field, [token]))
    values: dict[str, str] = {}
    for field, tokens in runs:
        if field is None:
            continue
        if field in values:
            return None, "a field in two places"
        values[field] = trim(" ".join(tokens))
    values = {field: value for field, value in values.items() if value}
    if not values:
        return None, "no address fields"
    return {field: values[field] for field in FIELDS if field in values}, None


def to_examples(addresses: list[Address], dropped: Counter[str]) -> list[Example]:
    """One example per usable address, first of each input kept; every copy of an input that
    was labelled in conflicting ways is dropped."""
    candidates = []
    for address in addresses:
        output, reason = fields_of(address)
        if output is None:
            dropped[reason or "unusable"] += 1
        else:
            candidates.append(Example(f"usaddress-{address.number:04d}", address.text, output))
    outputs_by_input: dict[str, set[str]] = {}
    for example in candidates:
        outputs_by_input.setdefault(example.input, set()).add(json.dumps(example.output))
    kept, seen = [], set()
    for example in candidates:
        if len(outputs_by_input[example.input]) > 1:
            dropped["duplicate input, conflicting labels"] += 1
        elif example.input in seen:
            dropped["duplicate input"] += 1
        else:
            seen.add(example.input)
            kept.append(example)
    return kept


def split(examples: list[Example], seed: int = SEED) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle; the first TEST_SIZE examples are the test split, the rest train."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    return shuffled[TEST_SIZE:], shuffled[:TEST_SIZE]


def jsonl(examples: list[Example]) -> str:
    """One record per line; the output is a JSON string holding the fields in FIELDS order."""
    lines = [
        json.dumps(
            {"id": e.id, "input": e.input, "output": json.dumps(e.output, ensure_ascii=False)},
            ensure_ascii=False,
        )
        for e in examples
    ]
    return "".join(line + "\n" for line in lines)


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temporary file in the same folder, then replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the data the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summarise(splits: dict[str, list[Example]], dropped: Counter[str], total: int) -> str:
    """A short human-readable report of what was kept, per field, and what was dropped."""
    lines = [f"labelled addresses: {total}"]
    for name, examples in splits.items():
        present = Counter(field for e in examples for field in e.output)
        per_field = ", ".join(f"{field} {present[field]}" for field in FIELDS)
        lines.append(f"{name}: {len(examples)} ({per_field})")
    lines.append(f"dropped: {sum(dropped.values())}")
    lines += [f"  {reason}: {n}" for reason, n in sorted(dropped.items())]
    return "\n".join(lines)


def build(archive: Path, out: Path) -> str:
    """Read the archive, write train/test JSONL under out, return the summary."""
    sdist.check(archive, PACKAGE, ARCHIVE_SHA256)
    addresses = parse_addresses(read_labelled(archive))
    dropped: Counter[str] = Counter()
    train, test = split(to_examples(addresses, dropped))
    if {e.input for e in train} & {e.input for e in test}:
        raise SystemExit("train and test share inputs")
    write_atomic(out / "train.jsonl", jsonl(train))
    write_atomic(out / "test.jsonl", jsonl(test))
    return summarise({"train": train, "test": test}, dropped, len(addresses))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.archive is not None:
        print(build(args.archive, args.out))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(build(sdist.download(PACKAGE, Path(tmp)), args.out))


if __name__ == "__main__":
    main()
