"""bench/gpu_check.py cannot rot while no GPU is lent: its dry run checks every step it would
take (imports, each task file loads, each command parses as the CLI reads it, the install
requirement, the two-process launch) and writes its JSON, which holds to the schema."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_gpu_check():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_the_dry_run_checks_every_step_and_writes_json_of_its_schema(tmp_path: Path) -> None:
    gpu_check = load_gpu_check()
    out = tmp_path / "gpu_check.json"
    result = gpu_check.main(["--dry-run", "--out", str(out), "--work", str(tmp_path / "work")])
    document = json.loads(out.read_text())
    assert gpu_check.GpuCheck.model_validate(document) == result
    assert document["dry_run"] is True
    parts = {part["name"]: part for part in document["parts"]}
    assert list(parts) == ["install", "convert", "lora", "qlora", "ddp"]
    assert all(part["status"] == "planned" for part in parts.values())
    assert parts["install"]["command"][-1] == gpu_check.BITSANDBYTES
    for name in ("lora", "qlora", "ddp"):
        command = parts[name]["command"]
        assert command[3] == "run" and command[command.index("--dtype") + 1] == "bfloat16"
    assert parts["ddp"]["command"][-2:] == ["--train-processes", "2"]
    qlora_task = (tmp_path / "work" / "task-qlora.yaml").read_text()
    assert "strategy: qlora" in qlora_task
    assert sum(gpu_check.LIMITS_S.values()) <= 8 * 60 and gpu_check.DEADLINE_S < 8 * 60


def test_the_install_is_from_local_wheels_on_an_offline_machine(tmp_path: Path) -> None:
    gpu_check = load_gpu_check()
    (install, _), *_ = gpu_check.plan(tmp_path, 1, tmp_path / "wheels")
    assert install == "install"
    parts = dict(gpu_check.plan(tmp_path, 1, tmp_path / "wheels"))
    assert parts["install"][-3:] == ["--no-index", "--find-links", str(tmp_path / "wheels")]
    assert "ddp" not in parts  # one GPU: no two-process run


def test_a_part_past_its_limit_is_stopped_and_recorded(tmp_path: Path) -> None:
    gpu_check = load_gpu_check()
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    part = gpu_check.run_part("lora", sleeper, 0.5, tmp_path)
    assert part.status == "timeout" and "stopped at its 0.5 s limit" in part.reason
    failing = gpu_check.run_part(
        "qlora", [sys.executable, "-c", "raise SystemExit('no')"], 10, tmp_path
    )
    assert part.seconds == 0.5 and failing.status == "failed" and "no" in failing.reason
