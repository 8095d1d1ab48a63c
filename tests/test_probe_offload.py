"""`kvplan probe --offload`: the reload pools and copies, the recompute's shapes and FLOPs, the
verdict, and `kvplan offload --measured` reading what the probe measured. On CPU torch here;
the same code on CUDA where present."""

from __future__ import annotations

import gc
import json
import weakref

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kvplan.calc.kv import request_bytes, resolve_kv_format  # noqa: E402
from kvplan.calc.offload import LINKS, Link, host_tier, prefill_flops, reload_verdict  # noqa: E402
from kvplan.cli import main  # noqa: E402
from kvplan.errors import InputError  # noqa: E402
from kvplan.probe.offload import run_offload  # noqa: E402
from kvplan.probe.recompute import measure_recompute, model_shapes  # noqa: E402
from kvplan.probe.reload import fit, gathered, measure, per_page, pools, reload_layout, sizes, verify  # noqa: E402
from kvplan.results.probe_offload import TransferPoint  # noqa: E402
from kvplan.units import GIB, MIB  # noqa: E402

CPU = torch.device("cpu")


# --- the reload pools ----------------------------------------------------------------------------

def test_reload_layout_by_hand(catalog):
    model = catalog.model("llama3-8b")
    layout = reload_layout(model, resolve_kv_format(model, "auto"), 16, 256)
    # a page of one layer: 16 tokens x 2 (K, V) x 8 heads x 128 x 2 B = 65,536 B; 256 tokens = 16 pages
    assert layout.layers == ((16, 65_536),) * 32
    assert layout.pool_bytes == 32 * 16 * 65_536 == 32 * MIB
    # cross-check: the calculator's exact bytes of 256 tokens, 256 x 128 KiB, and its paged bytes
    assert layout.pool_bytes == request_bytes(model, 256, resolve_kv_format(model, "auto")) == layout.predicted_bytes
    assert layout.bytes_at(4) == 32 * 4 * 65_536 and layout.states_bytes == 0


def test_a_windowed_layer_reloads_only_its_window(catalog):
    model = catalog.model("mistral-7b-v0.1")  # every layer windowed at 4,096 tokens
    layout = reload_layout(model, resolve_kv_format(model, "auto"), 16, 8192)
    assert layout.pages == 4096 // 16 == 256 and layout.pool_bytes == layout.predicted_bytes


def test_constant_states_are_counted_not_copied(catalog):
    model = catalog.model("jamba-v0.1")
    layout = reload_layout(model, resolve_kv_format(model, "auto"), 16, 256)
    assert layout.states_bytes > 0
    assert layout.pool_bytes == layout.predicted_bytes  # the paged bytes less the states, to the byte


def test_sizes_double_up_to_the_whole_pool():
    assert sizes(1) == [1] and sizes(8) == [1, 2, 4, 8] and sizes(10) == [1, 2, 4, 8, 10]


@settings(max_examples=50, deadline=None)
@given(st.floats(0.5, 5_000), st.floats(0.0, 1_000))
def test_fit_recovers_a_link(rate_gbps, latency_us):
    points = [TransferPoint(pages=k, bytes=k * 2**16, ms=(latency_us * 1e-6 + k * 2**16 / (rate_gbps * 1e9)) * 1e3,
                            gbps=0.0) for k in (1, 4, 16, 64, 256)]
    points = [p.model_copy(update={"gbps": p.bytes / (p.ms * 1e-3) / 1e9}) for p in points]
    got_rate, got_latency = fit(points)
    assert got_rate == pytest.approx(rate_gbps, rel=1e-6)
    assert got_latency == pytest.approx(latency_us, rel=1e-6, abs=1e-6)


def test_fit_never_claims_more_than_twice_what_was_seen():
    # times flat with size (all latency, noise on top): the slope says ~infinite GB/s
    points = [TransferPoint(pages=k, bytes=k * 1000, ms=ms, gbps=k * 1000 / (ms * 1e-3) / 1e9)
              for k, ms in ((1, 1.0), (2, 1.01), (4, 0.99), (8, 1.0))]
    assert fit(points) == (max(p.gbps for p in points), 0.0)  # 8,000 B / 1 ms = 0.008 GB/s


def _layout(catalog, prefix=64):
    model = catalog.model("smollm2-135m")  # 30 layers, 3 KV heads x 64: a page 16 x 2 x 3 x 64 x 2 = 12,288 B
    return reload_layout(model, resolve_kv_format(model, "auto"), 16, prefix)


@pytest.mark.parametrize("method", [gathered, per_page])
@pytest.mark.parametrize("to_device", [True, False])
def test_every_page_arrives_byte_for_byte(catalog, method, to_device):
    layout = _layout(catalog)
    assert layout.layers == ((4, 12_288),) * 30
    with pools(layout, CPU, seed=0) as p:
        assert verify(p, layout, method, to_device, torch.Generator().manual_seed(1)) == 30 * 4
        src, dst = (p.host, p.device) if to_device else (p.device, p.host)
        src_pages, dst_pages = (p.host_pages, p.device_pages) if to_device else (p.device_pages, p.host_pages)
        # page i of the prefix sits at a different row on each side: the tables are shuffled
        assert any(a != b for a, b in zip(src_pages[0], dst_pages[0]))
        assert torch.equal(dst[7][dst_pages[7][2]], src[7][src_pages[7][2]])


def test_a_method_that_drops_a_page_is_caught(catalog):
    layout = _layout(catalog)

    def drops_the_last(p, k, to_device):
        return per_page(p, k - 1, to_device)

    with pools(layout, CPU, seed=0) as p:
        assert verify(p, layout, drops_the_last, True, torch.Generator().manual_seed(1)) == 30 * 3


def test_pools_are_released_on_every_exit(catalog):
    layout = _layout(catalog)
    refs = []
    with pytest.raises(RuntimeError, match="boom"):
        with pools(layout, CPU, seed=0) as p:
            refs = [weakref.ref(t) for t in (*p.host, *p.device, p.host_stage, p.device_stage)]
            del p
            raise RuntimeError("boom")
    gc.collect()
    assert refs and all(r() is None for r in refs)


def test_measure_times_every_way_and_size(catalog):
    layout = _layout(catalog, prefix=128)  # 8 pages a layer
    with pools(layout, CPU, seed=0) as p:
        curves = measure(p, layout, seed=0, step=lambda _label: None)
    assert [(c.name, c.method) for c in curves] == [("host -> device", "gathered"), ("host -> device", "per page"),
                                                     ("device -> host", "gathered"), ("device -> host", "per page")]
    for c in curves:
        assert [pt.pages for pt in c.points] == [1, 2, 4, 8]
        assert [pt.bytes for pt in c.points] == [30 * k * 12_288 for k in (1, 2, 4, 8)]
        assert c.verified and c.pages_checked == 240 and c.fitted_gbps > 0


# --- the recompute ---------------------------------------------------------------------------------

def test_shapes_add_up_to_the_models_parameters(catalog):
    model = catalog.model("llama3-8b")
    s = model_shapes(model)
    # QKV 4,096 x (32 + 2 x 8) x 128, O 4,096 x 4,096, gate+up 4,096 x 28,672, down 14,336 x 4,096
    per_layer = sum(i * o for i, o in s.weights())
    assert per_layer == 4096 * 6144 + 4096 * 4096 + 4096 * 28_672 + 14_336 * 4096 == 218_103_808
    # cross-check with the spec: 32 layers + embeddings and LM head (2 x 128,256 x 4,096) + 65 norms x 4,096
    assert 32 * per_layer + 2 * 128_256 * 4096 + 65 * 4096 == model.params_total == 8_030_261_248
    # attention FLOPs as kvplan offload counts them, every layer alike
    assert 32 * s.attention_flops(4096) == prefill_flops(model, 4096, 0)[1]
    assert s.linear_flops(10) == 2 * 10 * 218_103_808


def test_moe_shapes_take_the_active_experts(catalog):
    s = model_shapes(catalog.model("mixtral-8x7b"))  # top-2 of 8 experts, 14,336 wide
    assert s.inter == 2 * 14_336


def test_mla_runs_decompressed(catalog):
    s = model_shapes(catalog.model("deepseek-v2-lite"))
    assert (s.q_heads, s.head_dim, s.v_head_dim) == (16, 128 + 64, 128)


def test_recompute_on_the_cpu(catalog):
    model = catalog.model("smollm2-135m")
    r = measure_recompute(model, 32, CPU, spare=GIB, gpu=None, seed=0)
    s = model_shapes(model)
    assert r.layers_timed == 2 and r.layers_total == 30 and r.dtype == "float32"
    assert r.flops_timed == 2 * (s.linear_flops(32) + s.attention_flops(32))
    assert r.achieved_tflops == pytest.approx(r.flops_timed / (r.ms * 1e-3) / 1e12)
    assert r.mfu is None and r.peak_tflops is None and r.assumed_mfu == 0.5


def test_recompute_refuses_what_does_not_fit(catalog):
    with pytest.raises(InputError, match="lower --prefix"):
        measure_recompute(catalog.model("smollm2-135m"), 4096, CPU, spare=64 * MIB, gpu=None, seed=0)


# --- the verdict -------------------------------------------------------------------------------------

def test_reload_verdict_by_hand(catalog):
    model = catalog.model("llama3-8b")
    link = Link("x", 25.0, 10e-6, "x")
    v = reload_verdict(model, "auto", 4096, link, 400e12, "by hand")
    kv = 4096 * 131_072  # 2 x 8 x 128 x 2 B x 32 layers a token
    assert v.kv_bytes == kv == 536_870_912
    assert v.load_s == pytest.approx(kv / 25e9 + 10e-6)
    flops = 2 * 4096 * model.params_per_token + 32 * (2 * 32 * 2 * 128) * (4096 * 4097 // 2)
    assert v.recompute_s == pytest.approx(flops / 400e12)
    assert v.ratio == pytest.approx(v.recompute_s / v.load_s)
    assert v.latency_us == pytest.approx(10.0) and v.tflops == pytest.approx(400.0)


def test_the_host_tier_is_the_gpus_own_link(catalog):
    assert host_tier(catalog.gpu("h100")).gbps == 64 and host_tier(catalog.gpu("h100")).name == "pcie5"
    assert host_tier(catalog.gpu("a100")).gbps == LINKS["pcie4"].gbps == 32


def test_run_offload_on_the_cpu(catalog):
    r = run_offload(catalog.model("smollm2-135m"), "auto", 16, 64, CPU, None, seed=0)
    assert r.reload.host_bytes == r.reload.device_bytes == r.reload.predicted_bytes == 30 * 4 * 12_288
    assert all(c.verified for c in r.reload.curves) and r.released
    assert r.predicted is None  # no datasheet for the CPU
    m = r.measured
    assert m.tflops == pytest.approx(r.recompute.achieved_tflops)
    assert m.kv_bytes == 64 * 30 * 2 * 3 * 64 * 2  # 64 tokens x 30 layers x 2 x 3 heads x 64 x 2 B
    assert m.load_s == pytest.approx(m.kv_bytes / (m.link_gbps * 1e9) + m.latency_us * 1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_run_offload_on_cuda(catalog):
    from kvplan.probe.device import database_gpu_name

    gpu = catalog.gpus.specs.get(database_gpu_name(torch.cuda.get_device_name(0)) or "")
    r = run_offload(catalog.model("llama3-8b"), "auto", 16, 4096, torch.device("cuda:0"), gpu, seed=0)
    assert r.reload.pinned and r.released and all(c.verified for c in r.reload.curves)
    assert r.reload.host_bytes == r.reload.device_bytes == 4096 * 131_072  # 4,096 tokens x 128 KiB
    assert r.recompute.dtype == "bfloat16" and r.recompute.achieved_tflops > 0
    if gpu:  # a GPU the database knows: the assumed basis beside the measured one
        assert r.predicted.link_gbps == gpu.host_link.gbps_per_direction and 0 < r.recompute.mfu < 1


# --- the command line ---------------------------------------------------------------------------------

PROBE = ["probe", "smollm2-135m", "--device", "cpu", "--ctx", "64", "--batch", "2", "--max-gib", "0.02", "--impl", "torch"]


@pytest.fixture(scope="module")
def probe_json(tmp_path_factory):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*PROBE, "--offload", "--prefix", "64", "--json"]) == 0
    path = tmp_path_factory.mktemp("probe") / "probe.json"
    path.write_text(out.getvalue())
    return path


def test_probe_offload_json(probe_json):
    data = json.loads(probe_json.read_text())
    assert data["ok"] and data["offload"]["released"] and data["transfer"] is None
    checks = {c["check"]: c["verdict"] for c in data["checks"]}
    assert checks["reload pool bytes (each side)"] == checks["reload: every page arrives"] == "pass"
    assert len(data["offload"]["reload"]["curves"]) == 4


def test_offload_measured_uses_what_was_measured(probe_json, capsys, catalog):
    probe = json.loads(probe_json.read_text())["offload"]
    assert main(["offload", "smollm2-135m", "--gpu", "h100", "--prefix", "1024", "--measured", str(probe_json),
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    measured, own = r["tiers"]
    assert (measured["tier"], own["tier"]) == ("measured", "pcie5")  # the link measured, then the GPU's own
    assert measured["gbps"] == probe["measured"]["link_gbps"]
    assert measured["latency_s"] == pytest.approx(probe["measured"]["latency_us"] * 1e-6)
    # no datasheet peak on the CPU: the achieved rate at MFU 1
    achieved = probe["recompute"]["achieved_tflops"]
    assert (r["tflops"], r["mfu"]) == (achieved, 1.0)
    flops = sum(prefill_flops(catalog.model("smollm2-135m"), 1024, catalog.model("smollm2-135m").params_per_token))
    assert r["recompute_s"] == pytest.approx(flops / (achieved * 1e12))


def test_offload_measured_bad_files(tmp_path, capsys):
    cases = {"not.json": "not json", "other.json": "{}", "none.json": None}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        assert main(["offload", "llama3-8b", "--gpu", "h100", "--measured", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and str(tmp_path / name) in err


def test_offload_measured_needs_the_offload_section(tmp_path, capsys):
    assert main([*PROBE, "--json"]) == 0
    path = tmp_path / "plain.json"
    path.write_text(capsys.readouterr().out)
    assert main(["offload", "llama3-8b", "--gpu", "h100", "--measured", str(path)]) == 2
    assert "ran without --offload" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--offload", "--prefix", "1000m"], "of host memory"),  # 1,000 x 2^20 tokens of KV, twice over
    (["--offload", "--device", "cuda:5"], "does not exist"),
    (["--plot", "x.png"], "add --offload or --peers"),
    (["--prefix", "512"], "add --offload or --peers"),
    (["--peer-timeout", "60"], "--peer-timeout is the deadline of --peers"),
    (["--offload", "--plot", "/proc/x.png"], "cannot write in /proc"),
    (["--offload", "--plot", "missing/x.png"], "does not exist"),
])
def test_probe_offload_bad_input(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = [*PROBE, *args]
    if "--device" in args:  # the last --device wins
        command = [a for a in PROBE if a not in ("--device", "cpu")] + args
    assert main(command) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and captured.out == ""


def test_probe_plot(tmp_path, capsys):
    path = tmp_path / "gbps.png"
    assert main([*PROBE, "--offload", "--prefix", "32", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "Reload a 32-token prefix" in out and "Recompute the prefix" in out and "measured" in out


def test_fit_without_latency_is_no_faster_than_seen():
    # the line through these points crosses zero below the origin: noise, not a latency
    points = [TransferPoint(pages=k, bytes=k * 10**6, ms=ms, gbps=k * 10**6 / (ms * 1e-3) / 1e9)
              for k, ms in ((1, 1.0), (2, 1.9), (4, 3.9), (8, 8.3))]
    rate, latency = fit(points)
    assert latency == 0.0
    # through the origin: sum(x^2) / sum(x y) in B/s; never above the best point's 1.05 GB/s (2e6 B / 1.9 ms)
    xs, ys = [1e6, 2e6, 4e6, 8e6], [1e-3, 1.9e-3, 3.9e-3, 8.3e-3]
    assert rate == pytest.approx(min(sum(x * x for x in xs) / sum(x * y for x, y in zip(xs, ys)) / 1e9, 2 / 1.9))


def test_offload_measured_refuses_a_second_rate(probe_json, capsys):
    assert main(["offload", "smollm2-135m", "--gpu", "h100", "--measured", str(probe_json), "--tflops", "500"]) == 2
    assert "drop --tflops" in capsys.readouterr().err


def test_offload_measured_is_for_the_model_probed(probe_json, capsys):
    assert main(["offload", "llama3-8b", "--gpu", "h100", "--measured", str(probe_json)]) == 2
    assert "the probe measured smollm2-135m, not llama3-8b" in capsys.readouterr().err


@pytest.mark.parametrize("key, value, message", [
    ("achieved_tflops", float("nan"), "achieved_tflops nan is not a number"),
    ("achieved_tflops", 0, "achieved_tflops 0 is outside (0, 100,000] TFLOPS"),
    ("link_gbps", -1.0, "link_gbps -1 is outside (0, 100,000] GB/s"),
])
def test_offload_measured_checks_every_figure(probe_json, tmp_path, capsys, key, value, message):
    data = json.loads(probe_json.read_text())
    data["offload"]["recompute" if key == "achieved_tflops" else "measured"][key] = value
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))  # json writes nan as NaN, which json reads back
    assert main(["offload", "smollm2-135m", "--gpu", "h100", "--measured", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_failed_allocation_is_one_line_and_frees_what_was_made(catalog, monkeypatch):
    layout = _layout(catalog)
    made, real = [], torch.empty

    def empty_then_fail(*args, **kwargs):
        if len(made) == 3:
            raise RuntimeError("CUDA error: out of memory\nmore detail")
        made.append(weakref.ref(real(*args, **kwargs)))
        return made[-1]()

    monkeypatch.setattr(torch, "empty", empty_then_fail)
    with pytest.raises(InputError, match="could not allocate the reload pools .*: CUDA error: out of memory; lower"):
        with pools(layout, CPU, seed=0):
            pass
    monkeypatch.undo()
    gc.collect()
    assert len(made) == 3 and all(r() is None for r in made)


def test_recompute_out_of_memory_is_one_line(catalog, monkeypatch):
    from kvplan.probe import recompute

    def no_memory(*_args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(recompute, "_layer", no_memory)
    with pytest.raises(InputError, match="ran out of memory on cpu; lower --prefix"):
        measure_recompute(catalog.model("smollm2-135m"), 32, CPU, spare=GIB, gpu=None, seed=0)
    monkeypatch.setattr(recompute, "_layer", lambda *_args: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # not a memory error: not dressed up as one
        measure_recompute(catalog.model("smollm2-135m"), 32, CPU, spare=GIB, gpu=None, seed=0)
