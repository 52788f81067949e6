"""bench: both paths run and the ratio is their quotient (no timing assertions)."""

import json

import pytest

from se_res2net.bench import bench, format_table


@pytest.mark.slow
def test_bench_tiny_cpu():
    r = bench(model="res2net29", device="cpu", batch_size=16, steps=2, warmup=1, data="sample")
    assert r["trainer"]["images_per_s"] > 0 and r["plain"]["images_per_s"] > 0
    assert r["speedup"] == pytest.approx(r["trainer"]["images_per_s"] / r["plain"]["images_per_s"])
    assert r["data_is_sample"] and r["timed_steps"] == 2 and r["device"] == "cpu"
    assert "speedup" in format_table(r)
    json.dumps(r)


@pytest.mark.slow
def test_bench_cli_json(capsys):
    from se_res2net.cli import main

    rc = main(["bench", "--model", "res2net29", "--device", "cpu", "--batch-size", "8", "--steps", "1",
               "--warmup", "0", "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["speedup"] == pytest.approx(r["trainer"]["images_per_s"] / r["plain"]["images_per_s"])


def test_bench_bad_input():
    with pytest.raises(ValueError, match="steps"):
        bench(steps=0, device="cpu")
    with pytest.raises(ValueError, match="unknown model"):
        bench(model="nope", device="cpu")
