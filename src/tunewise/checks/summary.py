"""The findings in words: one warning per risk found, notes for what was proven or measured,
and a rich view for the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

CHARACTER_KINDS = {
    "zero_width": "zero-width characters",
    "bidi_controls": "bidirectional (RTL/LTR) control characters",
    "control_characters": "control characters",
}


def _ids(finding: dict[str, Any]) -> str:
    more = finding["count"] - len(finding["ids"])
    return ", ".join(finding["ids"]) + (f" and {more} more" if more > 0 else "")


def _inputs(finding: dict[str, Any], verb: str) -> str:
    """'1 input holds' / '3 inputs hold' (verb given in the singular)."""
    count = finding["count"]
    if count == 1:
        return f"1 input {verb}"
    plural = {"is": "are", "has": "have"}.get(verb, verb.removesuffix("s"))
    return f"{count} inputs {plural}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} x{n}" for key, n in counts.items())


def headlines(findings: dict[str, Any]) -> list[str]:
    """One warning per risk found, naming the inputs (first ids)."""
    lines = []
    for kind, words in CHARACTER_KINDS.items():
        found = findings["characters"][kind]
        if found["count"]:
            chars = _counts(found["characters"])
            lines.append(f"{_inputs(found, 'holds')} {words} ({chars}): {_ids(found)}")
    for model in findings["tokenization"]:
        lines += [f"{model['model']}: {line}" for line in _model_lines(model)]
    lines += _language_lines(findings["languages"])
    return lines


def notes(findings: dict[str, Any]) -> list[str]:
    """What was proven or measured rather than found wrong: the special-token proof, and the
    detector's agreement with the examples' own language tags."""
    lines = []
    for model in findings["tokenization"]:
        special = model.get("special_tokens")
        if special and special["defused"]:
            counts = _counts(special["canary"]["template_counts"])
            canary = "a canary input holding every special string"
            n = special["count"]
            checked = f"the {n} input{'s' if n != 1 else ''} holding them and {canary}"
            lines.append(
                f"{model['model']}: special-token strings are defused. In the prompts of "
                f"{checked if n else canary}, every special token occurs exactly as often as "
                f"the template alone puts it there ({counts}): user text cannot end its turn"
            )
    gold = findings["languages"]["gold"]
    if gold and gold["accuracy"]:
        a = gold["accuracy"]
        lines.append(
            f"language detector vs the examples' language tags: {a['value']:.1%} agree "
            f"(95% CI {a['ci_low']:.1%}-{a['ci_high']:.1%}, n={a['n']})"
        )
    return lines


def _model_lines(model: dict[str, Any]) -> list[str]:
    if model["status"] != "checked":
        return [f"tokenizer checks skipped ({model['reason']})"]
    lines = []
    context = model["context"]
    window = context["window"]["tokens"]
    over, wrapped = context["over_window"], context["over_window_with_prompt"]
    if over["count"]:
        lines.append(
            f"{_inputs(over, 'is')} longer than the {window}-token context window on its own: "
            f"{_ids(over)}. {context['truncation']}"
        )
    elif wrapped["count"]:
        lines.append(
            f"{_inputs(wrapped, 'exceeds')} the {window}-token window with the zero-shot "
            f"prompt's {context['prompt_overhead_tokens']} tokens: {_ids(wrapped)}. "
            f"{context['truncation']}"
        )
    heavy = model["token_heavy"]
    if heavy["count"]:
        lines.append(
            f"{_inputs(heavy, 'costs')} unusually many tokens per character (over "
            f"{heavy['threshold_tokens_per_char']}; the median is "
            f"{heavy['median_tokens_per_char']}): {_ids(heavy)}"
        )
    for form, found in model["normalization"].items():
        if found["count"]:
            lines.append(
                f"{_inputs(found, 'tokenizes')} differently after {form.upper()} "
                f"normalization: {_ids(found)}"
            )
    special = model["special_tokens"]
    if special["count"]:
        strings = _counts(special["strings"])
        lines.append(
            f"{_inputs(special, 'holds')} special-token strings ({strings}): {_ids(special)}"
        )
    if not special["defused"]:
        failing = ", ".join(special["not_holding"]) or "a canary input"
        lines.append(
            f"special-token strings in user text are NOT defused: they reach the prompt as "
            f"special tokens ({failing})"
        )
    return lines


def _language_lines(languages: dict[str, Any]) -> list[str]:
    lines = []
    if languages["test_only"]:
        lines.append(
            f"test has languages train lacks ({', '.join(languages['test_only'])}): "
            f"{_ids(languages['test_only_ids'])}"
        )
    train, test = languages["train"]["shares"], languages["test"]["shares"]
    for code, difference in languages["shifted"].items():
        lines.append(
            f"the share of '{code}' differs between train ({train.get(code, 0.0):.0%}) and "
            f"test ({test.get(code, 0.0):.0%}): {difference:+.0%}"
        )
    return lines


def render_summary(findings: dict[str, Any]) -> RenderableType:
    """Language mix, tokens per character by script for each model, the warnings, the notes."""
    parts: list[RenderableType] = [Text(f"Risk checks: {findings['task']}", style="bold")]
    parts.append(_language_table(findings["languages"]))
    parts += [_script_table(m) for m in findings["tokenization"] if m["status"] == "checked"]
    warnings = findings["warnings"]
    parts.append(Text(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}", style="bold"))
    parts += [Text(f"- {line}", style="yellow") for line in warnings]
    parts += [Text(f"note: {line}") for line in findings["notes"]]
    return Group(*parts)


def _language_table(languages: dict[str, Any]) -> Table:
    table = Table(title=Text("Languages (share of inputs)"), title_justify="left")
    table.add_column("language")
    for split in ("train", "test"):
        table.add_column(f"{split} (n={languages[split]['n']})", justify="right")
    for code in dict.fromkeys([*languages["train"]["shares"], *languages["test"]["shares"]]):
        shares = [languages[split]["shares"].get(code, 0.0) for split in ("train", "test")]
        table.add_row(code, *(f"{share:.1%}" for share in shares))
    return table


def _script_table(model: dict[str, Any]) -> Table:
    window = model["context"]["window"]["tokens"]
    title = f"{model['model']}: tokens per character by script (context window {window})"
    table = Table(title=Text(title), title_justify="left")
    for column in ("script", "characters", "tokens", "tokens/char"):
        table.add_column(column, justify="left" if column == "script" else "right")
    for script, cost in model["scripts"].items():
        tokens, ratio = f"{cost['tokens']:.1f}", f"{cost['tokens_per_char']:.3f}"
        table.add_row(script, str(cost["chars"]), tokens, ratio)
    return table
