"""What a GPU block may take from an earlier block instead of measuring again, and the rule it decides by.

Results are judged by their own fields (machine, completeness), never by their file's name or folder."""

from __future__ import annotations

import json

import pytest

from se_res2net.cli import main
from se_res2net.training.decision import decide, decided_line, find_prior, kind_of, machine, why_not

H100 = {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "cuda": "13.0", "torch": "2.11.0+cu130"}
H200 = {**H100, "device_name": "NVIDIA H200"}
VARIANTS = ["plain", "eager", "compile", "cudagraphs"]


def bench_result(model="se_res2net29", variants=VARIANTS, speeds=(900.0, 1000.0, 3000.0, 2000.0), *, at=H100,
                 measured_at="2026-12-01T10:00:00Z", interrupted=None, failed=(), steps=50, warmup=10, batch=128):
    rows = [{"model": model, "variant": v, "images_per_s": s} for v, s in zip(variants, speeds)]
    return {**at, "measured_at": measured_at, "batch_size": batch, "warmup_steps": warmup, "timed_steps": steps,
            "rows": rows, "failed": [{"model": model, "variant": v, "error": "E"} for v in failed],
            "floor": None, "interrupted": interrupted}


def concurrency_result(variant="compile", levels=((1, 3000.0), (2, 5200.0), (4, 4800.0)), *, at=H100,
                       measured_at="2026-12-01T10:05:00Z", interrupted=None, sharing=None):
    """A concurrency result; ``sharing=None``: one written before MPS was measured (no ``sharing`` key)."""
    result = {"model": "se_res2net29", "variant": variant, **at, "measured_at": measured_at, "batch_size": 128,
              "warmup_steps_per_process": 10, "timed_steps": 50, "failed": [], "interrupted": interrupted,
              "rows": [{"processes": n, "aggregate_images_per_s": s} for n, s in levels]}
    if sharing is not None:
        result["sharing"] = sharing
    return result


def parity_result(variants=("eager_fp32", "cuda_defaults", "cuda_defaults_cudagraphs"), *, at=H100, epochs=4,
                  noise_seeds=None, measured_at="2026-12-01T10:20:00Z"):
    """A parity result; ``noise_seeds=None``: one written before the noise runs (no ``noise`` block)."""
    result = {"model": "se_res2net29", **at, "epochs": epochs, "measured_at": measured_at,
              "reference": "eager_fp32", "runs": {v: {"train_loss": [2.0, 1.5]} for v in variants}, "ok": True}
    if noise_seeds is not None:
        seeds = list(range(1, noise_seeds + 1))
        result["noise"] = {"seeds": seeds, "train_loss": {str(s): [2.0, 1.6] for s in seeds},
                           "max_abs_diff": 0.1 if seeds else None}
    return result


def stacked_result(variant="cudagraphs", levels=(4,), *, at=H100, failed=(), interrupted=None, batch=128):
    return {"kind": "stacked", "model": "se_res2net29", "variant": variant, **at,
            "measured_at": "2026-12-01T10:06:00Z", "batch_size_per_model": batch, "warmup_steps_per_level": 10,
            "timed_steps": 50, "interrupted": interrupted,
            "rows": [{"models": n, "aggregate_images_per_s": 9000.0 * n} for n in levels],
            "failed": [{"models": n, "error": "RuntimeError: out of memory"} for n in failed]}


WANT = dict(model="se_res2net29", variants=VARIANTS, batch_size=128, steps=50, warmup=10)


def test_a_result_is_known_by_its_keys_not_its_name():
    assert kind_of(bench_result()) == "bench"
    assert kind_of(concurrency_result()) == "concurrency"
    assert kind_of(parity_result()) == "parity"
    assert kind_of(stacked_result()) == "stacked"
    assert kind_of({"rows": [], "note": "anything else"}) is None


@pytest.mark.parametrize("result, want, reason", [
    (bench_result(), {}, None),
    (bench_result(at=H200), {}, "another machine"),
    (bench_result(at={**H100, "torch": "2.12.0+cu130"}), {}, "another machine"),
    (bench_result(at={**H100, "cuda": "12.8"}), {}, "another machine"),
    (bench_result(interrupted="during se_res2net29 / compile"), {}, "cut short"),
    (bench_result(variants=VARIANTS[:3]), {}, "lacks se_res2net29 / cudagraphs"),
    (bench_result(variants=VARIANTS[:3], failed=["cudagraphs"]), {}, None),  # failed here: it would fail again
    (bench_result(model="res2net29"), {}, "lacks se_res2net29 / plain, eager, compile, cudagraphs"),
    (bench_result(model="res2net29"), {"variants": []}, "lacks se_res2net29 / every variant"),
    (bench_result(steps=20), {}, "20 timed steps, not 50"),
    (bench_result(warmup=3), {}, "3 warm-up steps, not 10"),
    (bench_result(batch=64), {}, "batch 64, not 128"),
    (concurrency_result(), {"kind": "concurrency", "variants": ["compile"]}, None),
    (concurrency_result(), {"kind": "concurrency", "variants": ["cudagraphs"]}, "not se_res2net29 / cudagraphs"),
    (concurrency_result(interrupted="during 4 process(es)"), {"kind": "concurrency", "variants": ["compile"]}, "cut short"),
    (concurrency_result(levels=()), {"kind": "concurrency", "variants": ["compile"]}, "no level measured"),
    # processes taking turns and processes under MPS are two measurements; one that does not say took turns
    (concurrency_result(), {"kind": "concurrency", "sharing": "time-slicing"}, None),
    (concurrency_result(), {"kind": "concurrency", "sharing": "mps"}, "by time-slicing, not mps"),
    (concurrency_result(sharing="mps"), {"kind": "concurrency", "sharing": "mps"}, None),
    (concurrency_result(sharing="mps"), {"kind": "concurrency", "sharing": "time-slicing"}, "by mps, not time-slicing"),
    (dict(concurrency_result(sharing="mps"), rejected="no process reached the MPS daemon"),
     {"kind": "concurrency", "sharing": "mps"}, "rejected by its block: no process reached"),
    (parity_result(), {"kind": "parity", "variants": ["eager_fp32", "cuda_defaults"], "epochs": 4}, None),
    (parity_result(epochs=2), {"kind": "parity", "variants": ["cuda_defaults"], "epochs": 4}, "2 epochs, not 4"),
    (parity_result(("eager_fp32",)), {"kind": "parity", "variants": ["cuda_defaults"]}, "lacks the variant(s) cuda_defaults"),
    (parity_result(), {"kind": "bench"}, "not a bench result"),
    # the noise seeds: a result judged by fixed tolerances only (no noise block: 0) is another check
    (parity_result(), {"kind": "parity", "noise_seeds": 2}, "0 noise seed(s), not 2"),
    (parity_result(), {"kind": "parity", "noise_seeds": 0}, None),
    (parity_result(noise_seeds=0), {"kind": "parity", "noise_seeds": 0}, None),
    (parity_result(noise_seeds=1), {"kind": "parity", "noise_seeds": 2}, "1 noise seed(s), not 2"),
    (parity_result(noise_seeds=2), {"kind": "parity", "noise_seeds": 2, "epochs": 4}, None),
    # stacked: the asked levels, each measured or failed (out of memory at 8 fails again), in the asked variant
    (stacked_result(), {"kind": "stacked", "levels": [4]}, None),
    (stacked_result(levels=(4,), failed=(8,)), {"kind": "stacked", "levels": [4, 8]}, None),
    (stacked_result(levels=(2,)), {"kind": "stacked", "levels": [2, 4]}, "lacks the level(s) 4"),
    (stacked_result(levels=()), {"kind": "stacked", "levels": []}, "lacks the level(s) every level"),
    (stacked_result(), {"kind": "stacked", "variants": ["eager"]}, "not se_res2net29 / eager"),
    (stacked_result(batch=64), {"kind": "stacked"}, "batch 64 per model, not 128"),
    (stacked_result(at=H200), {"kind": "stacked"}, "another machine"),
    (stacked_result(interrupted="during 4 stacked model(s)"), {"kind": "stacked"}, "cut short"),
    (stacked_result(), {"kind": "concurrency"}, "not a concurrency result"),
])
def test_why_a_result_can_or_cannot_stand_for_a_measurement(result, want, reason):
    want = dict(want)
    kind = want.pop("kind", "bench")
    args = {"model": "se_res2net29", **({k: v for k, v in WANT.items() if k != "model"} if kind == "bench" else
                                        {"steps": 50, "warmup": 10, "batch_size": 128}
                                        if kind in ("concurrency", "stacked") else {})}
    args.update(want)
    got = why_not(result, kind, H100, **args)
    assert (got is None) if reason is None else (got is not None and reason in got), got


def test_the_last_measured_result_of_this_machine_is_found_wherever_it_lies(tmp_path):
    def put(rel, result):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
        return path

    put("a/bench-se_res2net29.json", bench_result(measured_at="2026-12-01T10:00:00Z"))
    later = put("b/deep/er/any-name.json", bench_result(measured_at="2026-12-02T09:00:00Z"))
    put("c/bench-se_res2net29.json", bench_result(at=H200, measured_at="2026-12-03T09:00:00Z"))  # not this GPU
    put("d/bench-se_res2net29.json", bench_result(interrupted="during x", measured_at="2026-12-04T09:00:00Z"))
    (tmp_path / "e.json").write_text("{not json")  # ignored, not fatal
    (tmp_path / "f.json").write_text("[1, 2]")
    assert find_prior([tmp_path], "bench", H100, **WANT) == later
    assert find_prior([tmp_path / "a", tmp_path / "missing"], "bench", H100, **WANT) == tmp_path / "a/bench-se_res2net29.json"
    assert find_prior([tmp_path], "bench", {**H100, "device_name": "NVIDIA A100"}, **WANT) is None
    assert find_prior([], "bench", H100, **WANT) is None


def test_the_rule_takes_the_fastest_trainer_variant_and_the_best_process_count():
    d = decide(bench_result(speeds=(9999.0, 1000.0, 3000.0, 2000.0)), concurrency_result())
    assert d == {"variant": "compile", "jobs": 2, "sharing": "time-slicing",
                 "args": ["--jobs", "2", "--compile", "default"]}  # plain never counts
    assert decided_line(d) == "decided: --jobs 2 --compile default (fastest variant: compile)"
    # the fewest processes within JOBS_SLACK of the best aggregate (the H200's 1/2/4/8 levels, measured)
    h200 = concurrency_result("cudagraphs", ((1, 15987.4), (2, 22400.0), (4, 22114.1), (8, 22579.1)))
    assert decide(None, h200)["jobs"] == 2
    assert decide(None, concurrency_result(levels=((1, 100.0), (2, 180.0), (4, 200.0))))["jobs"] == 4
    assert decide(None, concurrency_result(levels=((1, 100.0), (2, 190.0), (4, 199.0))))["jobs"] == 2
    g = decide(bench_result(speeds=(1.0, 1.0, 2.0, 3.0)), None)
    assert g["args"] == ["--jobs", "1", "--compile", "reduce-overhead"]
    nothing = decide(None, None)
    assert nothing["args"] == ["--jobs", "1"] and decided_line(nothing).startswith("decided: --jobs 1 (eager)")
    only_plain = decide(bench_result(variants=["plain"], speeds=(5.0,)), None)
    assert only_plain["variant"] == "eager"


def test_the_rule_takes_mps_only_when_it_beats_taking_turns_by_more_than_the_slack():
    """Over both concurrency results: the fewest processes within JOBS_SLACK of the best aggregate, taking turns
    rather than MPS at a tie (MPS adds a daemon the whole sweep depends on)."""
    turns = concurrency_result("cudagraphs", ((1, 15987.4), (2, 22400.0), (4, 22114.1), (8, 22579.1)))
    faster = concurrency_result("cudagraphs", ((1, 15500.0), (2, 26000.0), (4, 41000.0), (8, 42000.0)), sharing="mps")
    d = decide(None, [turns, faster])
    assert (d["jobs"], d["sharing"]) == (4, "mps") and d["args"] == ["--jobs", "4"]
    assert decided_line(d) == "decided: --jobs 4 (eager) (fastest variant: eager, under CUDA MPS)"
    tie = concurrency_result("cudagraphs", ((1, 15000.0), (2, 22600.0), (4, 23000.0)), sharing="mps")
    assert decide(None, [tie, turns])["sharing"] == "time-slicing"  # within 5 %: turns, 2 processes
    assert decide(None, [tie, turns])["jobs"] == 2
    assert decide(None, [None, faster])["sharing"] == "mps"  # MPS alone measured
    assert decide(None, [turns, None]) == decide(None, turns)
    assert decide(None, [turns, dict(faster, rejected="no process reached the MPS daemon")]) == decide(None, turns)


def test_cli_find_copies_what_it_found_and_exits_1_when_nothing_fits(tmp_path, capsys):
    here = tmp_path / "machine.json"
    here.write_text(json.dumps(H100))
    earlier = tmp_path / "benchmarks" / "gpu" / "block-1" / "results"
    earlier.mkdir(parents=True)
    (earlier / "bench-se_res2net29.json").write_text(json.dumps(bench_result()))
    results = tmp_path / "results"
    results.mkdir()
    target = results / "bench-se_res2net29.json"
    argv = ["decide", "find", "bench", "--here", str(here), "--roots", str(target), str(tmp_path / "benchmarks"),
            "--variants", *VARIANTS, "--batch-size", "128", "--steps", "50", "--warmup", "10", "--copy-to", str(target)]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "measured before on this machine (NVIDIA H100 80GB HBM3, torch 2.11.0+cu130)" in said
    assert target.read_bytes() == (earlier / "bench-se_res2net29.json").read_bytes()
    assert main(argv) == 0 and str(target) in capsys.readouterr().out  # now this block's own copy is found first
    assert main([*argv[:-2], "--steps", "100"]) == 1
    here.write_text(json.dumps(H200))
    assert main(argv) == 1  # another GPU: measure again
    here.write_text("{}")
    assert main(argv) == 2 and "does not name this machine" in capsys.readouterr().err


def test_cli_find_parity_takes_a_result_only_with_the_asked_number_of_noise_seeds(tmp_path, capsys):
    """The runbook asks for the parity check it would run (--noise-seeds N): an earlier result judged by fixed
    tolerances only, or with another number of seeds, is not that check; the default is the parity CLI's, 1."""
    here = tmp_path / "machine.json"
    here.write_text(json.dumps(H100))
    old = tmp_path / "parity" / "old.json"  # measured later, but without noise
    old.parent.mkdir()
    old.write_text(json.dumps(parity_result(measured_at="2026-12-03T10:00:00Z")))
    argv = ["decide", "find", "parity", "--here", str(here), "--roots", str(tmp_path / "parity"),
            "--variants", "eager_fp32", "cuda_defaults", "--epochs", "4"]
    assert main([*argv, "--noise-seeds", "2"]) == 1
    assert main([*argv, "--noise-seeds", "0"]) == 0 and str(old) in capsys.readouterr().out
    assert main(argv) == 1  # default 1
    two = tmp_path / "parity" / "two.json"
    two.write_text(json.dumps(parity_result(noise_seeds=2)))
    assert main([*argv, "--noise-seeds", "2"]) == 0 and str(two) in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*argv, "--noise-seeds", "-1"])
    assert "--noise-seeds: '-1' is not a number of seeds: pass 0" in capsys.readouterr().err


def test_cli_rule_keeps_the_decision_with_what_it_was_decided_from(tmp_path, capsys):
    (tmp_path / "bench.json").write_text(json.dumps(bench_result()))
    (tmp_path / "conc.json").write_text(json.dumps(concurrency_result()))
    (tmp_path / "here.json").write_text(json.dumps(H100))
    out = tmp_path / "decision.json"
    assert main(["decide", "rule", "--bench", str(tmp_path / "bench.json"), "--concurrency", str(tmp_path / "conc.json"),
                 "--here", str(tmp_path / "here.json"), "--out", str(out), "--print", "args"]) == 0
    assert capsys.readouterr().out.strip() == "--jobs 2 --compile default"
    kept = json.loads(out.read_text())
    assert kept["machine"] == H100 and kept["decided_at"].endswith("Z") and kept["variant"] == "compile"
    assert kept["from"]["bench"]["measured_at"] == "2026-12-01T10:00:00Z"
    assert kept["from"]["concurrency"]["file"] == str((tmp_path / "conc.json").resolve())
    assert main(["decide", "rule", "--bench", str(tmp_path / "none.json")]) == 0
    assert capsys.readouterr().out.strip() == "decided: --jobs 1 (eager) (fastest variant: eager)"
    # with the MPS result beside it (and one not measured): MPS, named in the decision and where it came from
    (tmp_path / "mps.json").write_text(json.dumps(concurrency_result(levels=((1, 3000.0), (2, 9000.0)), sharing="mps")))
    files = [str(tmp_path / n) for n in ("conc.json", "mps.json", "absent.json")]
    assert main(["decide", "rule", "--bench", str(tmp_path / "bench.json"), "--concurrency", *files, "--out", str(out),
                 "--print", "sharing"]) == 0
    assert capsys.readouterr().out.strip() == "mps"
    kept = json.loads(out.read_text())
    assert kept["sharing"] == "mps" and kept["jobs"] == 2
    assert set(kept["from"]) == {"bench", "concurrency", "concurrency (mps)"}


def test_machine_names_this_device_as_a_bench_result_does():
    import torch

    from se_res2net.training.records import device_info

    assert machine("cpu") == {**device_info("cpu"), "torch": torch.__version__}
