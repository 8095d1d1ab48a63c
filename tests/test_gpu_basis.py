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
    # A10G: nvidia-smi 23,028 MiB = 24,146,608,128 B, less 480 MiB
    assert catalog.gpu("a10g").cuda_memory() == (24_146_608_128 - 480 * MIB, "NVML total - 480 MiB driver reserve")


def test_the_reserve_rule_holds_where_it_can_be_checked(catalog):
    """The L40S's measured CUDA total (torch: 45,589 MiB) against its NVML total less 480 MiB
    (46,068 - 480 = 45,588 MiB): within 1 MiB. (The H200's reserve is larger: 615 MiB; measured.)"""
    l40s = catalog.gpu("l40s")
    assert l40s.cuda_memory() == (45_589 * MIB, "measured CUDA total")
    assert abs((l40s.usable_memory_bytes - 480 * MIB) - l40s.cuda_total_bytes) <= MIB


def test_else_the_datasheet_less_the_reserve(catalog):
    bare = catalog.gpu("l40s").model_copy(update={"usable_memory_bytes": None, "cuda_total_bytes": None})
    assert bare.cuda_memory() == (48 * 2**30 - 480 * MIB, "datasheet - 480 MiB driver reserve")


def test_amd_reports_what_rocm_smi_says(catalog):
    mi300x = catalog.gpu("mi300x")
    assert mi300x.cuda_memory() == (mi300x.usable_memory_bytes, "HIP total (rocm-smi)")


def test_every_engine_budget_starts_from_it_but_the_textbook(catalog):
    model, a10g = catalog.model("llama3-8b"), catalog.gpu("a10g")
    for engine in ("vllm", "sglang", "trtllm"):
        budget = memory_budget(model, a10g, BudgetInputs(engine=engine))
        assert budget.total_bytes == a10g.cuda_memory()[0] and "NVML total - 480 MiB" in budget.total_source
    assert memory_budget(model, a10g, BudgetInputs(engine="raw")).total_bytes == 24 * 2**30  # nominal, by definition


def test_the_gpus_table_shows_the_basis(capsys):
    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    h100 = next(line for line in out.splitlines() if line.startswith(" h100-sxm "))
    assert "79.18 " in h100  # 85,017,493,504 B / 2^30, measured: no mark
    a10g = next(line for line in out.splitlines() if line.startswith(" a10g "))
    assert f"{(24_146_608_128 - 480 * MIB) / 2**30:.2f}*" in a10g  # 22.02*
    assert "NVML total less the driver's 480 MiB reserve" in " ".join(out.split())
