"""README.md and docs/ stay true: every `$ kvplan ...` example in a console block runs as written and
prints what the page shows (a page may show a prefix), every `--json` key table matches the result
class it names, and every relative link points at a file that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("refresh_docs", ROOT / "examples" / "refresh_docs.py")
docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs)

PAGES = {page.relative_to(ROOT).as_posix(): page for page in docs.PAGES}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_examples_print_what_the_page_shows(page):
    text = PAGES[page].read_text()
    wrong = []
    with docs.page_folder():
        for command, shown in docs.examples(text):
            printed = docs.run(command)
            if [line.rstrip() for line in shown] != printed[: len(shown)]:
                wrong.append(command)
    assert wrong == [], f"run `python examples/refresh_docs.py`, then read the diff: {wrong}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_json_key_tables_match_the_code(page):
    for match in docs.SCHEMA.finditer(PAGES[page].read_text()):
        assert match.group(4) == docs.schema_table(match.group(2), match.group(3)), match.group(3)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_relative_links_resolve(page):
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", PAGES[page].read_text())
    assert [t for t in targets if not (PAGES[page].parent / t).exists()] == []


def test_every_command_has_a_page_and_examples():
    from kvplan.cli import COMMANDS

    text = "\n".join(page.read_text() for page in PAGES.values())
    assert len(list(docs.examples(text))) >= 25
    ran = {command.split()[1] for command, _ in docs.examples(text)}
    assert set(COMMANDS) - {"probe"} <= ran  # probe needs a GPU for its documented run; its CPU run is tested
    assert (ROOT / "docs" / "probe.md").exists()


def test_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert readme.index("# test-command") < readme.index("## ")  # the two commands come first


def test_a_wrong_example_is_caught():
    shown = ["this is not what kvplan prints"]
    assert docs.run("kvplan size llama3-70b --ctx 4096")[: len(shown)] != shown


def test_a_page_that_shows_an_example_file_shows_it_as_it_is():
    """A yaml block that opens as a file under examples/ opens is that file, whole (docs/check.md showed
    min_kv_tokens 120000 where examples/capacity.yaml says 90000)."""
    files = {path.read_text().splitlines()[0]: path for path in (ROOT / "examples").rglob("*.yaml")}
    shown = 0
    for page in PAGES.values():
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), flags=re.S):
            if (path := files.get(block.splitlines()[0])) is not None:
                shown += 1
                assert block == path.read_text(), f"{page.name} shows {path.name} otherwise"
    assert shown >= 2  # check.md's capacity.yaml, log.md's qwen3-4b-as-logged.yaml
