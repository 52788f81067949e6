"""The GPU blocks' benchmark results as the book shows them (se_res2net.audit.throughput)."""

import json

import pytest

from se_res2net.audit import throughput

MACHINE = {"device": "cuda", "device_name": "Fake GPU", "cuda": "13.0", "torch": "2.11"}


def _bench(model="se_res2net29", interrupted=None, floor=True):
    rows = [{"model": model, "variant": v, "images_per_s": x, "step_ms": 128_000 / x, "tflops": x / 1000,
             "vs_plain": x / 5000, "vs_eager": x / 4000, "setup": f"setup of {v}"}
            for v, x in (("plain", 5000.0), ("eager", 4000.0), ("cudagraphs", 20000.0))]
    peaks = {"device": "cuda", "device_name": "Fake GPU", "dtype": "bfloat16", "flops_per_s": 7e14,
             "bytes_per_s": 4e12, "seconds_per_op": 7e-6}
    return {**MACHINE, "measured_at": "2026-12-04T14:40:00Z", "batch_size": 128, "warmup_steps": 10,
            "timed_steps": 50, "data_source": "folder", "rows": rows, "interrupted": interrupted,
            "failed": [{"model": model, "variant": "compile", "error": "RuntimeError: boom"}],
            "floor": {"torch": "2.11", "peaks": peaks, "rows": [{
                "model": model, "batch_size": 128, "device": "cuda", "switches": "bf16 autocast, eager",
                "flops": 7.8e10, "bytes": 5.8e9, "ops": 750, "arithmetic_ms": 0.11, "memory_ms": 1.4,
                "launches_ms": 5.4, "floor_ms": 5.4, "bound": "launches", "ceiling_images_per_s": 23700.0}]}
            if floor else None}


def _concurrency(sharing=None, rejected=None):
    r = {"model": "se_res2net29", "variant": "cudagraphs", **MACHINE, "measured_at": "2026-12-04T14:42:00Z",
         "batch_size": 128, "warmup_steps_per_process": 10, "timed_steps": 200, "failed": [], "interrupted": None,
         "rows": [{"processes": n, "aggregate_images_per_s": x} for n, x in ((1, 16000.0), (2, 22400.0), (4, 22100.0))]}
    if sharing:
        r["sharing"] = sharing
    if rejected:
        r["rejected"] = rejected
    return r


def _stacked():
    return {"kind": "stacked", "model": "se_res2net29", "variant": "cudagraphs", **MACHINE,
            "measured_at": "2026-12-04T14:43:00Z", "batch_size_per_model": 128, "rows": [
                {"models": 4, "aggregate_images_per_s": 50000.0, "step_ms": 10.2, "launches": 900}]}


def test_results_are_found_by_their_own_keys_never_by_their_names(tmp_path):
    block = tmp_path / "block-1" / "results"
    block.mkdir(parents=True)
    # misleading names: a concurrency result called bench, a bench called concurrency
    (block / "bench-se_res2net29.json").write_text(json.dumps(_concurrency()))
    (block / "concurrency.json").write_text(json.dumps(_bench()))
    (block / "anything.json").write_text(json.dumps(_stacked()))
    (block / "concurrency-mps-rejected.json").write_text(json.dumps(_concurrency("mps", "no process reached it")))
    (block / "decision.json").write_text(json.dumps({"variant": "cudagraphs", "jobs": 2}))
    (block / "broken.json").write_text("{not json")
    found = throughput.load_results(tmp_path)
    assert [len(found[k]) for k in throughput.KINDS] == [1, 1, 1]
    assert found["bench"][0]["_path"].endswith("concurrency.json")
    assert found["concurrency"][0]["_path"].endswith("bench-se_res2net29.json")
    assert throughput.load_results(tmp_path / "nothing here") == {k: [] for k in throughput.KINDS}


def test_tables_carry_the_results_numbers():
    r = _bench(interrupted="during se_res2net29 / compile")
    table = throughput.bench_display(r)
    assert list(table["variant"]) == ["plain", "eager", "cudagraphs"]
    assert list(table["images/s"]) == [5000.0, 4000.0, 20000.0] and table["vs plain"].iloc[2] == 4.0
    assert throughput.bench_notes(r) == [
        "se_res2net29 / compile failed: RuntimeError: boom",
        "cut short by the block's bench budget during se_res2net29 / compile: the rows above are all it measured"]
    floor = throughput.floor_display(r)
    assert floor["bound by"].tolist() == ["launches"]
    assert floor["eager ÷ floor"].iloc[0] == pytest.approx((128_000 / 4000.0) / 5.4)  # the eager step's
    assert "model" not in table and "model" not in floor  # one model: named above the tables
    assert "bfloat16 matmul 700 TFLOP/s, copy 4,000 GB/s, 7.00 µs per op" in throughput.floor_text(r)
    assert throughput.floor_display(_bench(floor=False)).empty
    assert throughput.machine_text(r) == "Fake GPU (cuda), torch 2.11, measured 2026-12-04T14:40:00Z"


def test_the_sharing_figure_has_a_line_per_measurement():
    points = throughput.sharing_points([_concurrency(), _concurrency("mps")], [_stacked()])
    assert sorted(points["how"].unique()) == ["processes, mps", "processes, time-slicing", "stacked in one step"]
    assert points.loc[points["how"] == "stacked in one step", "runs"].tolist() == [4]
    fig = throughput.plot_sharing(points)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3
    assert ax.get_ylim()[1] >= 50000.0  # the stacked point is inside the plot
    assert throughput.sharing_points([], []).empty
