"""A fine-tuning method installed as a plugin (tests/plugins: (IA)3 through peft) trains on the
real embedded model through tunewise's own adapter recipe, gets a learning curve, a next step
and an export, with nothing in tunewise's source naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import fresh_home, tunewise

pytestmark = pytest.mark.integration

INTENTS = Path(__file__).resolve().parents[1] / "fixtures" / "support-intents"
CANDIDATES = (
    "candidates:\n"
    "  - {strategy: zero-shot}\n"
    "  - {strategy: ia3, max_train_examples: 20, epochs: 1, evaluations_per_epoch: 1}\n"
)


def test_a_plugin_method_trains_curves_and_exports(
    installed: None, converted_home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "task"
    shutil.copytree(INTENTS / "data", folder / "data")
    (folder / "task.yaml").write_text((INTENTS / "task.yaml").read_text() + CANDIDATES)
    home, out = fresh_home(converted_home, tmp_path), tmp_path / "runs"
    done = tunewise(
        "run", str(folder / "task.yaml"), "--limit", "20", "--learning-curve", "10",
        "--out", str(out), home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = max(out.iterdir(), key=lambda p: p.name)
    results = json.loads((run_dir / "results.json").read_text())
    (ia3,) = [c for c in results["candidates"] if c["strategy"] == "ia3"]
    training = ia3["setup"]["training"]
    assert (ia3["status"], ia3["family"], ia3["trains"]) == ("measured", "fine-tuning", True)
    assert training["config"]["peft"]["peft_type"] == "IA3"
    # (IA)3's vectors: a few thousand weights, where LoRA r=16 trains millions.
    assert 0 < training["trainable_parameters"] < 100_000
    assert ia3["metrics"]["accuracy"]["n"] == 20
    assert results["learning_curve"]["candidate"] == "ia3"
    assert [p["examples"] for p in results["learning_curve"]["points"]] == [10, 20]
    assert results["recommendation"]["next_step"]["action"]
    for fmt in ("adapter", "openai-jsonl"):
        exported = tunewise("export", str(run_dir), "--candidate", "ia3", "--format", fmt,
                            home=home)  # fmt: skip
        assert exported.returncode == 0, exported.stderr
    exports = run_dir / "exports"
    config = next(exports.rglob("adapter_config.json"))
    assert json.loads(config.read_text())["peft_type"] == "IA3"
    assert any(exports.rglob("train.jsonl"))
