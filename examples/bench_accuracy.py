"""How close kvplan lands to real engine start-up logs (tests/fixtures/engine_logs/).

For each fixture kvplan can describe (tests/fixtures/engine_logs/kvplan.yaml):
  from logged terms: the token capacity kvplan derives from the KV memory the log states;
  from defaults:     the capacity kvplan predicts from what a user knows before launch (model, GPU,
                     TP, the release's preset, the logged gpu_memory_utilization and max_model_len);
and each term's error (weights, KV memory). Then the median error, the share within 5% and the
worst, per engine and release. Fixtures whose GPU the database does not hold have no prediction.

Usage: python examples/bench_accuracy.py
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.calc.kv import resolve_kv_format
from kvplan.calc.kvgroups import tokens_for_kv_bytes
from kvplan.errors import KvplanError
from kvplan.specs.catalog import load_catalog
from kvplan.specs.engines.registry import engine as engine_entry
from kvplan.units import GIB

LOGS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "engine_logs"


def error(predicted: float, logged: float) -> float:
    return (predicted - logged) / logged


def inputs_before_launch(entry: dict, planned: dict) -> BudgetInputs:
    """What a user knows before launch: the release, the model and GPU, and what the command line
    (or the log's non-default args) sets; nothing the engine measured."""
    logged, release = entry["logged"], str(planned["release"])
    engine = engine_entry(f"vllm=={release}")
    settings: dict = {}
    if entry.get("command"):
        try:
            settings, _ = engine.read_command(entry["command"])
        except KvplanError:
            settings = {}
    return BudgetInputs(engine=f"vllm=={release}", tp=planned.get("tp", 1), pp=planned.get("pp", 1),
                        util=logged.get("gpu_memory_utilization"), weights_dtype=planned.get("weights_dtype", "auto"),
                        kv_dtype=planned.get("kv_dtype", "auto"), max_model_len=logged.get("max_model_len"),
                        max_num_seqs=settings.get("max_num_seqs"),
                        max_num_batched_tokens=settings.get("max_num_batched_tokens"))


def main() -> None:
    sources = {e["file"]: e for e in yaml.safe_load((LOGS / "SOURCES.yaml").read_text())}
    catalog = load_catalog()
    rows, by_bucket = [], defaultdict(list)
    for planned in yaml.safe_load((LOGS / "kvplan.yaml").read_text()):
        entry, logged = sources[planned["file"]], sources[planned["file"]]["logged"]
        model, tp = catalog.model(planned["model"]), planned.get("tp", 1)
        fmt = resolve_kv_format(model, planned.get("kv_dtype", "auto"))
        release = str(planned["release"])
        newer = tuple(int(p) for p in release.split(".")[:2]) >= (0, 21)
        count = dict(tp=tp, max_model_len=logged.get("max_model_len"), per_concurrency=newer)
        from_terms = tokens_for_kv_bytes(model, int(logged["kv_cache_gib"] * GIB), fmt, **count)
        row = {"file": planned["file"], "release": release, "logged": logged["kv_tokens"], "terms": from_terms,
               "defaults": None, "weights": None, "kv": None}
        if planned.get("gpu"):
            budget = memory_budget(model, catalog.gpu(planned["gpu"]), inputs_before_launch(entry, planned))
            row["defaults"] = budget.token_capacity
            row["weights"] = error(budget.weights_bytes / GIB, logged["weights_gib"]) if "weights_gib" in logged else None
            row["kv"] = error(budget.usable_pool_bytes / GIB, logged["kv_cache_gib"])
            by_bucket[f"{entry['engine']} {'.'.join(release.split('.')[:2])}"].append(
                error(row["defaults"], logged["kv_tokens"]))
        rows.append(row)
    print(f"{'fixture':<52} {'logged':>10} {'terms':>7} {'defaults':>9} {'weights':>8} {'KV GiB':>8}")
    pct = lambda e: "-" if e is None else f"{100 * e:+.1f}%"  # noqa: E731
    for r in rows:
        terms = None if r["terms"] is None else error(r["terms"], r["logged"])
        defaults = None if r["defaults"] is None else error(r["defaults"], r["logged"])
        print(f"{r['file'][:52]:<52} {r['logged']:>10,} {pct(terms):>7} {pct(defaults):>9} {pct(r['weights']):>8} "
              f"{pct(r['kv']):>8}")
    within = [abs(error(r["terms"], r["logged"])) < 0.005 for r in rows if r["terms"] is not None]
    print(f"\nfrom logged terms: {sum(within)} of {len(within)} within 0.5% (the rest: see kvplan.yaml's notes)")
    for bucket, errors in sorted(by_bucket.items()):
        absolute = [abs(e) for e in errors]
        print(f"from defaults, {bucket}: {len(errors)} fixtures, median {100 * statistics.median(absolute):.1f}%, "
              f"{sum(a <= 0.05 for a in absolute)} within 5%, worst {100 * max(absolute):.1f}%")


if __name__ == "__main__":
    main()
