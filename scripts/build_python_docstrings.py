"""Build the shipped example ``examples/python-docstrings/`` from the standard library's source.

Source: the ``.py`` files of the standard library of the Python that runs the script
(``sysconfig.get_paths()["stdlib"]``; PSF License Version 2). Each file is parsed with ``ast``
(files that do not decode as UTF-8 or do not parse are skipped), and every public function and
method (module level, or in a class body, also under ``if``/``try``/``with``) whose docstring
opens with a one-line summary becomes one example:

* ``input``: a comment naming the function's place (``# function in module json.decoder`` or
  ``# method of class JSONDecoder in module json.decoder``), then the function's source with its
  decorators, dedented, without the docstring statement and the blank lines right after it;
* ``output``: the docstring's first line, stripped.

A summary qualifies when it is 15 to 100 characters, starts with an upper-case letter, ends with
one full stop, is the whole first paragraph (the next docstring line is blank or absent) and is
not a signature (``name(args)``, ``-> type``). Inputs are kept at up to 20 lines and 900
characters. Names starting with ``_`` (dunder methods included), test packages and vendored or
demo trees are skipped. Duplicates are dropped, the first by id kept: code identical after
whitespace normalisation (the comment line aside), and summaries identical up to case and
spacing, so no summary appears twice. Ids that repeat (a function defined twice in one scope)
are dropped altogether.

Modules are shuffled with ``random.Random(0)`` over their sorted names and go to test until it
holds a quarter of the examples, the rest to train, so train and test share no module; each
split is then capped at a seeded sample of TRAIN_SIZE and TEST_SIZE. The script writes
``data/train.jsonl`` and ``data/test.jsonl``, ``{"id", "input", "output", "module"}`` sorted by
id, atomically.

    python scripts/build_python_docstrings.py

The examples are those of the Python that runs the script, so the same Python version always
gives byte-identical files; another version prints a note.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import random
import re
import statistics
import sys
import sysconfig
import textwrap
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from files import write_atomically  # a sibling module, not a package

SEED = 0
SHIPPED_PYTHON = "3.11.7"  # the Python whose standard library the shipped files come from
TRAIN_SIZE = 600
TEST_SIZE = 200
MIN_SUMMARY_CHARS = 15
MAX_SUMMARY_CHARS = 100
MAX_INPUT_LINES = 20
MAX_INPUT_CHARS = 900
MAX_PER_MODULE = (
    20  # a seeded sample of a bigger module, so that no module (tkinter) dominates a split
)
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "examples" / "python-docstrings" / "data"

# Folders skipped wherever they are: tests, IDLE, the 2to3 tool, bundled pip, the turtle demos,
# installed third-party packages, the build configuration and the frozen test packages.
SKIPPED_DIRS: frozenset[str] = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "lib2to3",
        "ensurepip",
        "turtledemo",
        "site-packages",
        "dist-packages",
        "lib-dynload",
        "__pycache__",
        "__phello__",
    }
)
SKIPPED_FILE = re.compile(r"^(test_.*|_sysconfigdata_.*|__hello__)\.py$")
SIGNATURE = re.compile(r"^[\w.]+\s*\(|->")  # "name(args) ..." or "... -> type"
BLOCKS = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.TryStar)  # searched for functions
NEWLINE = re.compile(r"\r\n|\r|\n")  # the line ends ast counts (not str.splitlines' \f, \x1c...)

# Imperative verbs that open summaries; the README's share counts a summary as imperative when
# its first word is one of these or is not a word ending in "s" and not one of NOT_VERBS.
IMPERATIVE: frozenset[str] = frozenset({
    "Add", "Apply", "Build", "Call", "Check", "Clear", "Close", "Compute", "Convert", "Copy",
    "Create", "Decode", "Delete", "Encode", "Find", "Flush", "Format", "Generate", "Get", "Handle",
    "Initialize", "Insert", "Load", "Make", "Open", "Parse", "Print", "Process", "Read", "Register",
    "Remove", "Reset", "Return", "Run", "Send", "Set", "Start", "Stop", "Test", "Update", "Wait",
    "Write",
})  # fmt: skip
NOT_VERBS: frozenset[str] = frozenset({
    "A", "An", "The", "This", "It", "If", "For", "In", "On", "Is", "Used", "Called", "Same",
    "Similar", "Like", "Equivalent", "Whether", "True", "Special", "Just",
})  # fmt: skip


@dataclass(frozen=True)
class Example:
    """One function or method with its summary."""

    id: str
    module: str
    code: str  # the source without the docstring, dedented, without the comment line
    input: str
    output: str


def module_name(path: Path, root: Path) -> str:
    """``json/decoder.py`` -> ``json.decoder``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def source_files(root: Path) -> Iterator[Path]:
    """The standard library's .py files, sorted, without the skipped folders and files."""
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("config-"))
        for name in sorted(files):
            if name.endswith(".py") and not SKIPPED_FILE.match(name):
                yield here / name


def summary_of(docstring: str) -> str | None:
    """The docstring's one-line summary, or None when it does not qualify."""
    lines = docstring.strip().split("\n")
    first = lines[0].strip()
    if len(lines) > 1 and lines[1].strip():
        return None  # the first paragraph runs on
    if not MIN_SUMMARY_CHARS <= len(first) <= MAX_SUMMARY_CHARS:
        return None
    if not first[0].isupper() or not first.endswith(".") or first.endswith(".."):
        return None
    if SIGNATURE.search(first):
        return None
    return first


def functions(
    body: list[ast.stmt], classes: tuple[str, ...] = ()
) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """Functions and methods in a module or class body, with their class qualname ('' if none)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, ".".join(classes)
        elif isinstance(node, ast.ClassDef):
            yield from functions(node.body, (*classes, node.name))
        elif isinstance(node, BLOCKS):
            for field in ("body", "orelse", "finalbody"):
                yield from functions(getattr(node, field, []), classes)
            for handler in getattr(node, "handlers", []):
                yield from functions(handler.body, classes)


def without_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str | None:
    """The function's lines, decorators included, less the docstring; None if that fails."""
    doc, rest = node.body[0], node.body[1:]
    if not rest or node.end_lineno is None or doc.end_lineno is None:
        return None
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    first_col = min([node.col_offset] + [d.col_offset for d in node.decorator_list])
    if (
        lines[start - 1][:first_col].strip()
        or lines[node.end_lineno - 1][node.end_col_offset :].strip()
    ):
        return None  # shares a line with other code
    before = lines[doc.lineno - 1][: doc.col_offset]
    after = lines[doc.end_lineno - 1][doc.end_col_offset :]
    if before.strip() or (after.strip() and not after.strip().startswith("#")):
        return None  # the docstring shares a line with the signature or the next statement
    kept = lines[start - 1 : doc.lineno - 1]
    tail = lines[doc.end_lineno : node.end_lineno]
    while tail and not tail[0].strip():
        tail = tail[1:]
    code = textwrap.dedent("\n".join(line.rstrip() for line in kept + tail))
    if code[:1].isspace():
        return None  # a multi-line string at the left margin keeps it from dedenting
    return code


def examples_in(path: Path, module: str, dropped: Counter[str]) -> Iterator[Example]:
    """Every qualifying function and method of one source file; counts what it skips."""
    try:
        source = path.read_text(encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old code
            tree = ast.parse(source, filename=str(path))
    except (UnicodeDecodeError, SyntaxError, ValueError):
        dropped["files that do not decode or parse"] += 1
        return
    lines = NEWLINE.split(source)
    for node, owner in functions(tree.body):
        docstring = ast.get_docstring(node)  # cleaned as inspect.cleandoc does
        if node.name.startswith("_") or docstring is None:
            continue
        summary = summary_of(docstring)
        if summary is None:
            dropped["no one-line summary"] += 1
            continue
        code = without_docstring(node, lines)
        if code is None:
            dropped["nothing left or not separable"] += 1
            continue
        where = f"method of class {owner}" if owner else "function"
        text = f"# {where} in module {module}\n{code}"
        if len(text) > MAX_INPUT_CHARS or text.count("\n") + 1 > MAX_INPUT_LINES:
            dropped["input too long"] += 1
            continue
        qualname = f"{owner}.{node.name}" if owner else node.name
        yield Example(f"{module}.{qualname}", module, code, text, summary)


def collect(root: Path, dropped: Counter[str]) -> list[Example]:
    """All examples of the library, sorted by id, with repeated ids and duplicates dropped."""
    found = [
        example
        for path in source_files(root)
        for example in examples_in(path, module_name(path, root), dropped)
    ]
    ids = Counter(e.id for e in found)
    dropped["repeated id"] = sum(n for n in ids.values() if n > 1)
    kept: list[Example] = []
    codes: set[str] = set()
    summaries: set[str] = set()
    for example in sorted((e for e in found if ids[e.id] == 1), key=lambda e: e.id):
        code = " ".join(example.code.split())
        summary = " ".join(example.output.split()).casefold()
        if code in codes:
            dropped["duplicate code"] += 1
        elif summary in summaries:
            dropped["duplicate summary"] += 1
        else:
            codes.add(code)
            summaries.add(summary)
            kept.append(example)
    return kept


def split(examples: list[Example], dropped: Counter[str]) -> tuple[list[Example], list[Example]]:
    """Modules capped at MAX_PER_MODULE, then whole modules to test until it holds a quarter of
    the examples, the rest to train; then each split capped with a seeded sample."""
    rng = random.Random(SEED)
    by_module: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_module[example.module].append(example)
    for module, group in sorted(by_module.items()):
        if len(group) > MAX_PER_MODULE:
            dropped["over the module cap"] += len(group) - MAX_PER_MODULE
            by_module[module] = sorted(rng.sample(group, MAX_PER_MODULE), key=lambda e: e.id)
    modules = sorted(by_module)
    rng.shuffle(modules)
    share = sum(map(len, by_module.values())) * TEST_SIZE / (TRAIN_SIZE + TEST_SIZE)
    train: list[Example] = []
    test: list[Example] = []
    for module in modules:
        (test if len(test) < share else train).extend(by_module[module])
    dropped["over the split sizes"] = max(0, len(train) - TRAIN_SIZE) + max(
        0, len(test) - TEST_SIZE
    )
    train = rng.sample(train, TRAIN_SIZE) if len(train) > TRAIN_SIZE else train
    test = rng.sample(test, TEST_SIZE) if len(test) > TEST_SIZE else test
    return sorted(train, key=lambda e: e.id), sorted(test, key=lambda e: e.id)


def jsonl(examples: Iterable[Example]) -> str:
    records = (
        {"id": e.id, "input": e.input, "output": e.output, "module": e.module} for e in examples
    )
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def is_imperative(summary: str) -> bool:
    """The README's approximation: a listed verb, or a first word that is no -s form."""
    word = summary.split()[0].strip(",.:;")
    return word in IMPERATIVE or (not word.endswith("s") and word not in NOT_VERBS)


def describe(name: str, examples: list[Example]) -> str:
    """One line of counts and medians for a split."""
    lines = statistics.median(e.input.count("\n") + 1 for e in examples)
    chars = statistics.median(len(e.input) for e in examples)
    words = statistics.median(len(e.output.split()) for e in examples)
    imperative = sum(map(is_imperative, (e.output for e in examples))) / len(examples)
    modules = len({e.module for e in examples})
    return (
        f"{name}: {len(examples)} examples, {modules} modules, median input {lines:g} lines /"
        f" {chars:g} chars, median output {words:g} words, imperative {imperative:.0%}"
    )


def main() -> int:
    root = Path(sysconfig.get_paths()["stdlib"])
    dropped: Counter[str] = Counter()
    examples = collect(root, dropped)
    train, test = split(examples, dropped)
    write_atomically({OUT / "train.jsonl": jsonl(train), OUT / "test.jsonl": jsonl(test)})
    print(f"qualifying functions: {len(examples)} in {len({e.module for e in examples})} modules")
    print("dropped: " + ", ".join(f"{n} {why}" for why, n in sorted(dropped.items())))
    print(describe("train", train))
    print(describe("test", test))
    firsts = Counter(e.output.split()[0] for e in train + test)
    print("first words: " + ", ".join(f"{w} {n}" for w, n in firsts.most_common(12)))
    version = platform.python_version()
    print(f"python: {version} (standard library at {root})")
    if version != SHIPPED_PYTHON:
        print(f"note: the shipped files were built with Python {SHIPPED_PYTHON}; this one differs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
