"""Build the shipped example ``examples/python-docs-qa/`` from CPython's own reference docs.

Source: ``pydoc_data.topics`` in the standard library, the plain-text sections of the Python
Language and Library Reference that ``help()`` shows (written by the Python documentation
authors, PSF License Version 2). The questions are written by hand in
``scripts/python_docs_qa_questions.jsonl`` (CC0-1.0), one ``{"id", "doc_id", "question",
"answer"}`` object per line; every answer is a short span copied verbatim from its document.

The script writes:

* ``documents.jsonl``: ``{"id", "title", "text"}`` for every topic a question uses plus the
  DISTRACTORS, sorted by id; the text is whitespace-normalised per paragraph, paragraphs
  separated by blank lines;
* ``data/train.jsonl`` / ``data/test.jsonl``: ``{"id", "input", "output", "doc_id"}``; each
  topic's questions are shuffled with ``random.Random(0)`` and split in half, the odd one going
  to train, so every topic is in train.

    python scripts/build_python_docs_qa.py

Every question is checked first (its topic exists, its answer occurs verbatim in the written
text); on a failure the script prints ``file:line: reason`` and exits 1 without writing anything.
Outputs are written atomically. The documents are those of the Python that runs the script, so
the same Python version always gives byte-identical files.
"""

from __future__ import annotations

import json
import platform
import random
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pydoc_data.topics import topics  # the standard library's help() texts

from files import write_atomically  # a sibling module, not a package

SEED = 0
SHIPPED_PYTHON = "3.11.7"  # the Python whose pydoc_data the shipped files come from
MAX_ANSWER_WORDS = 8
REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "scripts" / "python_docs_qa_questions.jsonl"
OUT = REPO / "examples" / "python-docs-qa"

# Topics no question uses, shipped so that retrieval has to pick the right section.
DISTRACTORS: tuple[str, ...] = (
    "async",
    "atom-literals",
    "attribute-access",
    "attribute-references",
    "await",
    "bitwise",
    "bltin-code-objects",
    "bltin-ellipsis-object",
    "bltin-null-object",
    "bltin-type-objects",
    "callable-types",
    "typesfunctions",
    "typesseq",
)

# Topics left out: each repeats (most of) another shipped topic word for word, which would give
# a question two gold documents. "compound" holds if/while/for/try/with/function/class/async;
# "specialnames" holds customization, attribute-access, callable-types, numeric-types,
# sequence-types and context-managers; "execmodel" holds naming and exceptions.
EXCLUDED: frozenset[str] = frozenset(
    {
        "augassign",  # a section of "assignment"
        "compound",
        "dynamic-features",  # a section of "naming"
        "else",  # the same text as "if"
        "execmodel",
        "id-classes",  # a section of "identifiers"
        "in",  # a section of "comparisons"
        "specialnames",
        "typesseq-mutable",  # a section of "typesseq"
    }
)

UNDERLINE = re.compile(r"^([*=\-~^])\1{2,}$")  # reST heading underlines
WRAPPED_HYPHEN = re.compile(r"(?<=[A-Za-z])-\n\s*(?=[a-z])")  # "left-\nhand" -> "left-hand"
TRAILING_PUNCTUATION = ".,;:!?"


def paragraphs(raw: str) -> list[str]:
    """Split a topic into paragraphs, each on one line, without reST heading underlines."""
    out = []
    for block in re.split(r"\n\s*\n", raw):
        lines = [line for line in block.split("\n") if not UNDERLINE.match(line.strip())]
        text = " ".join(WRAPPED_HYPHEN.sub("-", "\n".join(lines)).split())
        if text:
            out.append(text)
    return out


def document(topic: str) -> dict[str, str]:
    """One documents.jsonl record: the first paragraph (the heading) is the title."""
    paras = paragraphs(topics[topic])
    title = paras[0] if paras else topic
    return {"id": topic, "title": title, "text": "\n\n".join(paras[1:])}


def read_questions(path: Path, texts: dict[str, str]) -> tuple[list[dict[str, str]], list[str]]:
    """Parse and check the questions file; returns the questions and 'file:line: reason' errors."""
    questions: list[dict[str, str]] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{where}: not JSON ({exc.msg})")
            continue
        fields = ("id", "doc_id", "question", "answer")
        if not isinstance(record, dict) or any(
            not isinstance(record.get(key), str) or not record[key].strip() for key in fields
        ):
            errors.append(f"{where}: needs non-empty string fields {', '.join(fields)}")
            continue
        qid, topic, answer = record["id"], record["doc_id"], record["answer"]
        if qid in seen:
            errors.append(f"{where}: id '{qid}' repeats line {seen[qid]}")
        seen.setdefault(qid, number)
        if topic in EXCLUDED:
            errors.append(f"{where}: doc_id '{topic}' is excluded (it duplicates other topics)")
        elif topic not in topics:
            errors.append(f"{where}: doc_id '{topic}' is not a topic in pydoc_data.topics")
        elif topic in DISTRACTORS:
            errors.append(f"{where}: doc_id '{topic}' is a distractor; take it out of DISTRACTORS")
        else:
            if topic not in texts:
                texts[topic] = document(topic)["text"]
            if answer not in texts[topic]:
                errors.append(f"{where}: answer '{answer}' does not occur verbatim in '{topic}'")
        if answer != answer.strip() or answer[-1] in TRAILING_PUNCTUATION:
            errors.append(f"{where}: answer '{answer}' has outer spaces or ends in punctuation")
        if len(answer.split()) > MAX_ANSWER_WORDS:
            errors.append(f"{where}: answer '{answer}' is over {MAX_ANSWER_WORDS} words")
        questions.append({key: record[key] for key in fields})
    return questions, errors


def split(questions: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Half of each topic's shuffled questions to test, the rest (at least one) to train."""
    rng = random.Random(SEED)
    by_topic: dict[str, list[dict[str, str]]] = defaultdict(list)
    for question in questions:
        by_topic[question["doc_id"]].append(question)
    train: list[dict[str, str]] = []
    test: list[dict[str, str]] = []
    for topic in sorted(by_topic):
        group = sorted(by_topic[topic], key=lambda q: q["id"])
        rng.shuffle(group)
        cut = len(group) - len(group) // 2
        train.extend(group[:cut])
        test.extend(group[cut:])
    return sorted(train, key=lambda q: q["id"]), sorted(test, key=lambda q: q["id"])


def jsonl(records: Iterable[dict[str, str]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def example(question: dict[str, str]) -> dict[str, str]:
    return {
        "id": question["id"],
        "input": question["question"],
        "output": question["answer"],
        "doc_id": question["doc_id"],
    }


def main() -> int:
    questions, errors = read_questions(QUESTIONS, {})
    for topic in DISTRACTORS:
        if topic not in topics or topic in EXCLUDED:
            errors.append(f"{Path(__file__).name}: distractor '{topic}' is not a usable topic")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    ids = sorted({q["doc_id"] for q in questions} | set(DISTRACTORS))
    documents = [document(topic) for topic in ids]
    train, test = split(questions)
    write_atomically(
        {
            OUT / "documents.jsonl": jsonl(documents),
            OUT / "data" / "train.jsonl": jsonl(map(example, train)),
            OUT / "data" / "test.jsonl": jsonl(map(example, test)),
        }
    )
    words = sum(len(doc["text"].split()) for doc in documents)
    used = len({q["doc_id"] for q in questions})
    print(f"documents: {len(documents)} ({used} with questions, {len(DISTRACTORS)} distractors)")
    print(f"words in documents: {words}")
    print(f"questions: {len(questions)} (train {len(train)}, test {len(test)})")
    version = platform.python_version()
    print(f"python: {version} (pydoc_data.topics)")
    if version != SHIPPED_PYTHON:
        print(f"note: the shipped files were built with Python {SHIPPED_PYTHON}; this one differs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
