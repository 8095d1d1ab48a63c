"""Rendering for `kvplan check`: a summary table, and JUnit XML for CI dashboards."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from kvplan.render.output import output_path, write_output
from kvplan.results.check import ScenarioResult


def render_check(console: Console, results: Sequence[ScenarioResult]) -> None:
    table = Table(title="Capacity checks", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=(0, 1, 0, 0))  # one space and the column rule: 80 columns hold the usual names
    for name in ("Scenario", "Expectation", "Expected", "Actual", "Result"):
        table.add_column(name, no_wrap=name in ("Scenario", "Expectation", "Actual", "Result"),  # names whole
                         min_width=12 if name == "Expected" else None)
    for r in results:
        for i, o in enumerate(r.outcomes):
            table.add_row(r.name if i == 0 else "", o.expectation, o.expected, o.actual,
                          "[green]pass[/]" if o.passed else "[bold red]fail[/]")
        if not r.outcomes:
            table.add_row(r.name, "-", "-", "-", "[dim]no expectations[/]")
    console.print(table)
    for r in results:
        if not r.passed:
            console.print(f"[red]{r.name}[/]: " + (suggestion(r) or "no single change (fp8 KV, more TP, "
                                                                   "quantized weights) makes it pass"))
        if r.ignored_flags:
            console.print(f"[dim]{r.name}: ignored {r.engine} flags {', '.join(r.ignored_flags)}[/]")
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")


def suggestion(r: ScenarioResult) -> str | None:
    """The fixes in the check file's own words: 'passes with max_num_seqs: 54 (54 requests)'."""
    if not r.fixes:
        return None
    said = (", ".join(f"{field}: {value}" for field, value in fix.settings.items())  # as they go in the file
            + f" ({fix.concurrency:,} requests)" for fix in r.fixes)
    return "passes with " + " or ".join(said)


def write_junit(path: Path, results: Sequence[ScenarioResult]) -> None:
    """One testsuite; one testcase per scenario and expectation, failures carrying expected/actual."""
    cases = [(r, o) for r in results for o in r.outcomes]
    suite = ET.Element("testsuite", name="kvplan check", tests=str(len(cases)),
                       failures=str(sum(not o.passed for _, o in cases)))
    for r, o in cases:
        case = ET.SubElement(suite, "testcase", classname=r.name, name=o.expectation)
        if not o.passed:
            failure = ET.SubElement(case, "failure", message=f"expected {o.expected}, got {o.actual}")
            failure.text = suggestion(r) or ""
    root = ET.Element("testsuites")
    root.append(suite)
    write_output(path, ET.tostring(root, encoding="utf-8", xml_declaration=True), "--junit")


def markdown_summary(results: Sequence[ScenarioResult]) -> str:
    """The summary table as GitHub-flavoured Markdown, for a CI job summary ($GITHUB_STEP_SUMMARY)."""
    failed = sum(not r.passed for r in results)
    lines = [f"### kvplan check: {len(results) - failed} passed, {failed} failed", "",
             "| Scenario | Expectation | Expected | Actual | Result |", "|---|---|---|---|---|"]
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    for r in results:
        for o in r.outcomes or ():
            lines.append(f"| {cell(r.name)} | {o.expectation} | {cell(o.expected)} | {cell(o.actual)} | "
                         f"{'pass' if o.passed else '**fail**'} |")
        if not r.outcomes:
            lines.append(f"| {cell(r.name)} | - | - | - | no expectations |")
    lines += [""] + [f"- **{cell(r.name)}**: {cell(suggestion(r))}" for r in results if not r.passed and r.fixes]
    lines += [f"- {cell(r.name)}: ignored {r.engine} flags {cell(', '.join(r.ignored_flags))}"
              for r in results if r.ignored_flags]
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(path: Path, results: Sequence[ScenarioResult]) -> None:
    """Append the summary (a job summary file collects every step's); create the file if it is new."""
    output_path(path, "--markdown")
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    write_output(path, old + ("\n" if old else "") + markdown_summary(results), "--markdown")
