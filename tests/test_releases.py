"""`kvplan models --new`: the database by family and release date, newest first; the date on each
spec (ModelSpec.released) checked as a calendar date with its source, never in the future."""

from __future__ import annotations

import io
import json
from datetime import date, datetime

import pytest
from pydantic import ValidationError
from rich.console import Console

from kvplan.calc.listing import release_rows
from kvplan.cli import main
from kvplan.render.catalog import releases_table
from kvplan.specs.catalog import spec_to_yaml
from tests.conftest import make_model

TODAY = date(2026, 12, 6)


def dated(name: str, family: str, released: str | None):
    extra = {"released": released, "released_source": "https://example.org/announcement"} if released else {}
    return make_model(name=name, display_name=name, family=family, **extra)


SMALL = [dated("alpha-old", "alpha", "2024-05-01"), dated("alpha-new", "alpha", "2025-01-10"),
         dated("beta-one", "beta-x", "2025-03-01"), dated("beta-two", "beta_x", None),
         dated("gamma", "gamma", None)]


def rendered(table) -> str:
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def test_small_catalog_exact_output():
    # beta_x first: its newest release (2025-03-01) is the newest of all; 'beta-x' and 'beta_x' are one
    # family; within it the dated release before the undated; gamma, undated, last.
    assert rendered(releases_table(release_rows(SMALL))) == """\
Releases by family, newest first

 Family   Released       Model
 ─────────────────────────────────
 beta_x   2025-03-01     beta-one
          date unknown   beta-two
 alpha    2025-01-10     alpha-new
          2024-05-01     alpha-old
 gamma    date unknown   gamma
"""


def test_release_rows_carry_each_family_newest_date():
    rows = release_rows(SMALL)
    assert [(f.family, f.newest) for f in rows] == [("beta_x", date(2025, 3, 1)), ("alpha", date(2025, 1, 10)),
                                                   ("gamma", None)]
    assert [r.name for r in rows[1].releases] == ["alpha-new", "alpha-old"]


@pytest.mark.parametrize("value", [20250101, "2025-13-01", "April 2025", datetime(2025, 4, 29, 12, 0), True])
def test_released_must_be_a_calendar_date(value):
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        make_model(released=value, released_source="x")


def test_a_date_needs_its_source():
    with pytest.raises(ValidationError, match="released 2025-04-29 has no released_source"):
        make_model(released="2025-04-29")


def test_yaml_writes_the_date_unquoted_and_reads_it_back():
    spec = make_model(released=date(2025, 4, 29), released_source="https://qwenlm.github.io/blog/qwen3/")
    text = spec_to_yaml(spec)
    assert "\nreleased: 2025-04-29\n" in text
    import yaml
    assert type(spec).model_validate(yaml.safe_load(text)) == spec


def test_packaged_dates_are_past_and_sourced(catalog):
    specs = catalog.models.specs.values()
    dated_specs = [m for m in specs if m.released]
    assert len(dated_specs) >= 121  # the dates filled with a source: 72 when the field was added, 49 more since
    for m in dated_specs:
        assert isinstance(m.released, date) and m.released <= TODAY, m.name
        assert m.released_source, m.name
    assert catalog.model("llama3-8b").released == date(2024, 4, 18)  # https://ai.meta.com/blog/meta-llama-3/


def test_cli_new_lists_every_model_once_newest_family_first(capsys, catalog):
    assert main(["models", "--new", "--json"]) == 0
    families = json.loads(capsys.readouterr().out)
    names = [r["name"] for f in families for r in f["releases"]]
    assert sorted(names) == sorted(catalog.models.specs)
    newest = [date.fromisoformat(f["newest"]) for f in families if f["newest"]]
    assert newest == sorted(newest, reverse=True)
    assert all(f["newest"] is None for f in families[len(newest):])  # the undated families come last


def test_cli_new_table_fits_80_columns(capsys):
    assert main(["models", "--new"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Releases by family, newest first")
    assert " qwen3_5_moe     2026-04-16     qwen3.6-35b-a3b" in out
    assert max(len(line) for line in out.splitlines()) <= 80
