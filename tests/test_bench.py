"""bench: every variant runs side by side and the ratios are quotients (no timing assertions)."""

import json

import pytest

from se_res2net.training.bench import bench, bench_concurrency, format_concurrency, format_table


@pytest.mark.slow
def test_bench_tiny_cpu():
    r = bench(models=["res2net29"], variants=["plain", "eager"], device="cpu", batch_size=16, steps=2, warmup=1,
              data="sample")
    rows = {row["variant"]: row for row in r["rows"]}
    assert set(rows) == {"plain", "eager"} and all(row["images_per_s"] > 0 for row in rows.values())
    assert rows["eager"]["vs_plain"] == pytest.approx(rows["eager"]["images_per_s"] / rows["plain"]["images_per_s"])
    assert rows["plain"]["vs_plain"] == pytest.approx(1.0) and rows["plain"]["vs_eager"] is not None
    # achieved TFLOP/s = 6 x MACs x images/s
    assert rows["eager"]["tflops"] == pytest.approx(6 * rows["eager"]["macs"] * rows["eager"]["images_per_s"] / 1e12)
    assert "fp32" in rows["eager"]["setup"] and "DataLoader" in rows["plain"]["setup"]
    assert r["data_is_sample"] and r["timed_steps"] == 2 and r["device"] == "cpu"
    assert "vs plain" in format_table(r)
    json.dumps(r)


@pytest.mark.slow
def test_bench_cli_json(capsys):
    from se_res2net.cli import main

    rc = main(["bench", "--models", "res2net29", "--variants", "eager", "--device", "cpu", "--batch-size", "8",
               "--steps", "1", "--warmup", "0", "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    (row,) = r["rows"]
    assert row["variant"] == "eager" and row["vs_plain"] is None and row["vs_eager"] == pytest.approx(1.0)


@pytest.mark.slow
def test_concurrency_runs_processes_together():
    r = bench_concurrency(model="res2net29", variant="eager", counts=[1, 2], device="cpu", batch_size=8, steps=2,
                          warmup=1)
    assert [row["processes"] for row in r["rows"]] == [1, 2]
    assert len(r["rows"][1]["per_process_images_per_s"]) == 2
    assert r["rows"][0]["vs_first"] == pytest.approx(1.0)
    assert "aggregate" in format_concurrency(r)


def test_bench_bad_input():
    with pytest.raises(ValueError, match="steps"):
        bench(steps=0, device="cpu")
    with pytest.raises(ValueError, match="unknown model"):
        bench(models=["nope"], device="cpu")
    with pytest.raises(ValueError, match="variant"):
        bench(variants=["turbo"], device="cpu")
    with pytest.raises(ValueError, match="not plain"):
        bench_concurrency(variant="plain", device="cpu")
