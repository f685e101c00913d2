"""The README and docs/ promise only what exists: every command and flag in their code blocks is
one the CLI has, every task.yaml key in their YAML blocks is one the task schema allows, every
Python import resolves, every relative link points at a file, and the site builds strictly."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from tunewise.cli.main import app
from tunewise.task.loading import task_schema

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?ms)^```(\w*)[^\n]*\n(.*?)^```")


def blocks(*languages: str) -> Iterator[tuple[str, str]]:
    """(where, body) of every fenced block in one of `languages` ("" is a plain fence)."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) in languages:
                line = text[: match.start()].count("\n") + 1
                yield f"{page.relative_to(ROOT)}:{line}", match.group(2)


def test_the_readme_is_a_landing_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 10_000
    first_block = next(blocks("bash"))[1].splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["make demo", "make test"]


# ---- commands ------------------------------------------------------------------------------


def cli_commands() -> dict[str, set[str]]:
    group: Any = typer.main.get_command(app)
    return {
        name: {opt for param in command.params for opt in param.opts if opt.startswith("--")}
        for name, command in group.commands.items()
    }


def commands_in_docs() -> Iterator[tuple[str, str]]:
    for where, body in blocks("bash", "sh", "console", ""):
        for line in body.splitlines():
            found = re.search(r"(?:^|\s|/|run it: )tunewise (\S+)(.*)", line)
            if found:
                yield where, f"{found.group(1)} {found.group(2)}"


def test_every_documented_command_and_flag_exists() -> None:
    commands = cli_commands()
    seen = 0
    for where, line in commands_in_docs():
        name, rest = line.split(" ", 1)
        assert name in commands, f"{where}: `tunewise {name}` is not a command"
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest.split("#")[0]):
            assert flag in commands[name], f"{where}: `tunewise {name}` has no {flag}"
        seen += 1
    assert seen >= 20  # the check reads the blocks it means to


def test_every_documented_make_target_and_script_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"(?m)^([a-z][\w-]*):", makefile))
    for where, body in blocks("bash", "sh", ""):
        for line in body.splitlines():
            words = line.split("#")[0].split()
            if words[:1] == ["make"]:
                assert set(words[1:]) <= targets, f"{where}: {line.strip()}"
            if words[:1] == ["python"] and words[1:2] and words[1].endswith(".py"):
                assert (ROOT / words[1]).is_file(), f"{where}: {words[1]} does not exist"


# ---- task.yaml keys ------------------------------------------------------------------------


def branches(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The concrete schemas a value may match: $ref resolved, unions flattened."""
    if "$ref" in node:
        return branches(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    for union in ("anyOf", "oneOf", "allOf"):
        if union in node:
            return [b for option in node[union] for b in branches(option, defs)]
    return [node]


def strategies(node: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """The `strategy:` values a candidate schema accepts."""
    field = node.get("properties", {}).get("strategy")
    if field is None:
        return []
    resolved = branches(field, defs)[0]
    return list(resolved.get("enum", [resolved.get("const")]))


def check_keys(value: Any, node: dict[str, Any], defs: dict[str, Any], path: str) -> None:
    options = branches(node, defs)
    if isinstance(value, dict):
        objects = [o for o in options if o.get("type") == "object" or "properties" in o]
        assert objects, f"{path} is not a mapping in the task schema"
        if "strategy" in value:  # a candidate: the branch of its strategy
            objects = [o for o in objects if value["strategy"] in strategies(o, defs)] or objects
        for key, item in value.items():
            known = [o["properties"][key] for o in objects if key in o.get("properties", {})]
            free = [
                o["additionalProperties"]
                for o in objects
                if isinstance(o.get("additionalProperties"), dict)
            ] + [
                schema
                for o in objects
                for pattern, schema in o.get("patternProperties", {}).items()
                if re.search(pattern, key)
            ]
            assert known or free, f"{path}.{key} is not a task.yaml key"
            check_keys(item, (known or free)[0], defs, f"{path}.{key}")
    elif isinstance(value, list):
        items = [o["items"] for o in options if "items" in o]
        for index, item in enumerate(value):
            if items:
                check_keys(item, items[0], defs, f"{path}[{index}]")


def test_every_documented_task_key_exists() -> None:
    schema = task_schema()
    defs = schema.get("$defs", {})
    checked = 0
    for where, body in blocks("yaml", "yml"):
        document = yaml.safe_load(body)
        if not isinstance(document, dict):
            continue  # a GitHub Actions step list, not a task file
        check_keys(document, schema, defs, where)
        checked += 1
    assert checked >= 6


def test_a_misspelt_key_is_caught() -> None:
    schema = task_schema()
    with pytest.raises(AssertionError, match=r"data\.tarin is not a task.yaml key"):
        check_keys({"data": {"tarin": "x.jsonl"}}, schema, schema["$defs"], "t")
    with pytest.raises(AssertionError, match="kk is not"):
        check_keys(
            {"candidates": [{"strategy": "few-shot", "kk": 4}]}, schema, schema["$defs"], "t"
        )


# ---- Python and links ----------------------------------------------------------------------


def test_every_documented_python_import_resolves() -> None:
    for where, body in blocks("python"):
        for node in ast.walk(ast.parse(body)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tunewise"):
                module = importlib.import_module(str(node.module))
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{where}: {node.module}.{alias.name}"


def test_every_relative_link_points_at_a_file() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.name}: {target}"


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is not installed (pip install -e '.[dev]')")  # fmt: skip
def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    built = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert (tmp_path / "site" / "development" / "index.html").exists()
