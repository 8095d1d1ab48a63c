"""One GPU memory basis: the total CUDA reports to a process, per GPU, with its source."""

from __future__ import annotations

from kvplan.calc.budget import BudgetInputs, memory_budget
from kvplan.cli import main
from kvplan.specs.gpu import DRIVER_RESERVED_BYTES

MIB = 2**20


def test_measured_where_known(catalog):
    # H100 80GB HBM3: cudaMemGetInfo total measured at 85,017,493,504 B (79.18 GiB)
    assert catalog.gpu("h100").cuda_memory() == (85_017_493_504, "measured CUDA total")


def test_else_nvml_less_the_drivers_reserve(catalog):
    # the reserve: NVML 85,520,809,984 - CUDA 85,017,493,504 on that H100 = 503,316,480 B = 480 MiB
    assert DRIVER_RESERVED_BYTES == 85_520_809_984 - 85_017_493_504 == 480 * MIB
    # L40S: nvidia-smi 46,068 MiB = 48,305,799,168 B, less 480 MiB
    assert catalog.gpu("l40s").cuda_memory() == (48_305_799_168 - 480 * MIB, "NVML total - 480 MiB driver reserve")


def test_else_the_datasheet_less_the_reserve(catalog):
    bare = catalog.gpu("l40s").model_copy(update={"usable_memory_bytes": None})
    assert bare.cuda_memory() == (48 * 2**30 - 480 * MIB, "datasheet - 480 MiB driver reserve")


def test_amd_reports_what_rocm_smi_says(catalog):
    mi300x = catalog.gpu("mi300x")
    assert mi300x.cuda_memory() == (mi300x.usable_memory_bytes, "HIP total (rocm-smi)")


def test_every_engine_budget_starts_from_it_but_the_textbook(catalog):
    model, l40s = catalog.model("llama3-8b"), catalog.gpu("l40s")
    for engine in ("vllm", "sglang", "trtllm"):
        budget = memory_budget(model, l40s, BudgetInputs(engine=engine))
        assert budget.total_bytes == l40s.cuda_memory()[0] and "NVML total - 480 MiB" in budget.total_source
    assert memory_budget(model, l40s, BudgetInputs(engine="raw")).total_bytes == 48 * 2**30  # nominal, by definition


def test_the_gpus_table_shows_the_basis(capsys):
    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    h100 = next(line for line in out.splitlines() if line.startswith(" h100-sxm "))
    assert "79.18 " in h100  # 85,017,493,504 B / 2^30, measured: no mark
    l40s = next(line for line in out.splitlines() if line.startswith(" l40s "))
    assert f"{(48_305_799_168 - 480 * MIB) / 2**30:.2f}*" in l40s  # 44.52*
    assert "NVML total less the driver's 480 MiB reserve" in " ".join(out.split())
