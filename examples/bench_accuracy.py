"""How close kvplan lands to real engine start-up logs (tests/fixtures/engine_logs/).

For each fixture kvplan can describe (kvplan.yaml, kvplan-sglang.yaml, kvplan-trtllm.yaml):
  from logged terms: the token capacity kvplan derives from the KV memory the log states, by the
                     engine's own layout (its error: 0 when the log's figure lies in the interval its
                     rounding allows);
  from defaults:     the capacity kvplan predicts from what a user knows before launch (model, GPU,
                     TP/PP, the release's preset, what the command line sets);
and each term's error where the log states it (weights, activation, KV memory). Then, per engine and
release and per engine, the median error from defaults, the share within 5% and the worst. Fixtures
whose GPU the database does not hold have no prediction.

Usage: python examples/bench_accuracy.py
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine_fixtures import PLANNED, SOURCES, error, logged_interval, predicted

from kvplan.specs.catalog import load_catalog
from kvplan.units import GIB


def pct(e: float | None) -> str:
    return "-" if e is None else f"{100 * e:+.1f}%"


def summary(label: str, errors: list[float]) -> str:
    absolute = [abs(e) for e in errors]
    within = sum(a <= 0.05 for a in absolute)
    return (f"{label}: {len(errors)} fixtures, median {100 * statistics.median(absolute):.2f}%, {within} within 5% "
            f"({100 * within / len(errors):.0f}%), worst {100 * max(absolute):.1f}%")


def main() -> None:
    catalog = load_catalog()
    by_release, by_engine = defaultdict(list), defaultdict(list)
    print(f"{'fixture':<50} {'logged':>10} {'terms':>7} {'defaults':>9} {'weights':>8} {'act.':>7} {'KV GiB':>8}")
    reproduced = []
    for planned in PLANNED:
        logged = SOURCES[planned["file"]]["logged"]
        tokens = logged["kv_tokens"]
        interval = logged_interval(catalog.model(planned["model"]), planned)
        terms = None if interval is None else 0.0 if interval[0] <= tokens <= interval[1] else error(interval[0], tokens)
        if interval is not None:  # a log that prints no pool size has no terms to reproduce
            reproduced.append((terms == 0.0, planned.get("unexplained")))
        budget = predicted(catalog, planned)
        defaults = weights = activation = kv = None
        if budget is not None:
            defaults = error(budget.token_capacity, tokens)
            if "weights_gib" in logged:
                weights = error(budget.weights_bytes / GIB, logged["weights_gib"])
            if "activation_gib" in logged:
                activation = error(budget.activation_bytes / GIB, logged["activation_gib"])
            if "kv_cache_gib" in logged:
                kv = error(budget.usable_pool_bytes / GIB, logged["kv_cache_gib"])
            if not planned.get("unexplained") and not planned.get("capped"):  # a capped pool is no rule's to predict
                release = ".".join(str(planned.get("release", "newest")).split(".")[:2])
                by_release[f"{planned['engine']} {release}"].append(defaults)
                by_engine[planned["engine"]].append(defaults)
        print(f"{planned['file'][:50]:<50} {tokens:>10,} {pct(terms):>7} {pct(defaults):>9} {pct(weights):>8} "
              f"{pct(activation):>7} {pct(kv):>8}")
    exact = sum(ok for ok, _ in reproduced)
    said = sum(bool(why) for _, why in reproduced)
    print(f"\nfrom logged terms: {exact} of {len(reproduced)} within the log's rounding "
          f"({said} said not to be, with the reason, in the mapping files)")
    for bucket, errors in sorted(by_release.items()):
        print("from defaults, " + summary(bucket, errors))
    for engine, errors in sorted(by_engine.items()):
        print("from defaults, all of " + summary(engine, errors))


if __name__ == "__main__":
    main()
