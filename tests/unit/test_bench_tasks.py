"""The bench tasks under bench/tasks/: every task file loads with its data and fits its output
format; email-triage holds what its README promises (4 labels, about 2,000 long training emails,
no email in both splits), and its build script's cleaning and labelling are checked on an inline
email (the real corpus needs a download)."""

from __future__ import annotations

import email
import importlib.util
import statistics
import sys
from collections import Counter
from email import policy
from pathlib import Path
from types import ModuleType

import pytest

from tunewise.evaluation.validators import validate
from tunewise.run import RunOptions, load_data
from tunewise.task.config import LabelFormat, Task
from tunewise.task.data import Dataset
from tunewise.task.loading import load_task

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tasks"
TASKS = sorted(BENCH.glob("*/task.yaml"))
EMAIL_TRIAGE = BENCH / "email-triage" / "task.yaml"


def task_and_data(task_file: Path) -> tuple[Task, Dataset]:
    task = load_task(task_file)
    dataset, _ = load_data(task, RunOptions())  # as `tunewise run` loads it
    return task, dataset


def email_triage_build() -> ModuleType:
    """Import bench/tasks/email-triage/build.py (a script, not a package)."""
    name = "email_triage_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EMAIL_TRIAGE.parent / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task_file", TASKS, ids=lambda path: path.parent.name)
def test_bench_task_loads_and_fits_its_format(task_file: Path) -> None:
    task, dataset = task_and_data(task_file)
    assert dataset.test_source == "file"
    assert dataset.train and dataset.test
    assert not dataset.leaked
    fmt = task.contract.output_format
    invalid = [
        (e.id, why) for e in dataset.train + dataset.test if (why := validate(fmt, e.output))
    ]
    assert not invalid


def test_email_triage_is_a_long_input_four_label_task() -> None:
    assert EMAIL_TRIAGE in TASKS
    task, dataset = task_and_data(EMAIL_TRIAGE)
    fmt = task.contract.output_format
    assert isinstance(fmt, LabelFormat)
    assert fmt.labels == ["spam", "newsletter", "technical", "general"]
    assert task.target is not None
    assert (task.target.metric, task.target.min) == ("accuracy", 0.9)
    assert len(dataset.train) >= 1900
    assert 250 <= len(dataset.test) <= 350
    for split in (dataset.train, dataset.test):
        counts = Counter(e.output for e in split)
        assert set(counts) == set(fmt.labels)
        assert min(counts.values()) >= 0.05 * len(split)
    assert statistics.median(len(e.input.split()) for e in dataset.train) >= 100
    assert statistics.median(len(e.input.split()) for e in dataset.test) >= 100


def test_email_triage_splits_share_no_email() -> None:
    build = email_triage_build()
    _, dataset = task_and_data(EMAIL_TRIAGE)
    examples = dataset.train + dataset.test
    assert len({e.id for e in examples}) == len(examples)
    assert len({e.input for e in examples}) == len(examples)
    roots = build.duplicate_roots([e.input for e in examples])
    assert roots == list(range(len(examples)))  # not even a near-duplicate pair


RAW = b"""From: Someone <someone@example.org>
Subject: Re: [ILUG] [Fwd] Kernel panic on boot
List-Id: Irish Linux Users' Group <ilug.linux.ie>
Content-Type: text/plain; charset=us-ascii

On Mon, 2 Sep 2002, Other Person wrote:
> My laptop panics on boot since the upgrade.
> Any idea?

Try booting the old kernel from the grub menu and see whether the
initrd was built: see http://www.example.org/docs/grub.html?session=12345 for the steps.

The new one needs the ext3 module in its initrd.

--
Someone, somewhere
--
Irish Linux Users' Group: ilug@linux.ie
"""


def test_email_triage_cleans_an_email_to_subject_and_own_words() -> None:
    build = email_triage_build()
    message = email.message_from_bytes(RAW, policy=policy.compat32)
    assert build.label_of("easy-ham-1", message) == "technical"
    assert build.label_of("spam-2", message) == "spam"
    assert build.label_of("hard-ham-1", message) == "newsletter"
    text = build.to_input(message)
    assert text == (
        "Subject: Re: Kernel panic on boot\n\n"
        "Try booting the old kernel from the grub menu and see whether the\n"
        "initrd was built: see http://www.example.org/docs/grub.html for the steps.\n\n"
        "The new one needs the ext3 module in its initrd."
    )
    assert build.to_input(message) == text


def test_email_triage_cut_keeps_whole_paragraphs_then_a_sentence() -> None:
    build = email_triage_build()
    first = " ".join(["word"] * 8) + "."
    second = "One two three four five six. Seven eight nine ten eleven twelve thirteen."
    assert build.cut([first, second], limit=30) == f"{first}\n\n{second}"
    assert build.cut([first, second], limit=12) == first
    assert build.cut([first + " " + second], limit=12) == first
    assert build.cut([first, second], limit=14) == first  # under 15 words of room: stop
    long = " ".join(f"w{i}" for i in range(40))
    assert build.cut([long], limit=10) == " ".join(f"w{i}" for i in range(10)) + " ..."
