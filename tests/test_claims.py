"""The claims ledger (se_res2net.audit.claims) on fake records: verdicts, profiles, tolerances, untestable claims."""

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from se_res2net.audit import claims as C
from se_res2net.audit.results import RECORD_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "book" / "claims.yaml"
REPORT = ROOT.parent / "shared" / "seeds" / "000_7dd082c2c19ddd61.txt"


def rec(profile, model, seed, err, device="Fake GPU", sample=False, status="complete", epochs=1, planned=1,
        last=None):
    return {"profile": profile, "model": model, "seed": seed, "status": status, "final_test_error": err,
            "state": {"running": "incomplete"}.get(status, status), "params": 1e6, "macs": 1e8, "epochs": epochs,
            "planned_epochs": planned, "last_test_error": err if last is None else last,
            "wall_time_s": 10.0, "device_name": device,
            "data_source": "folder", "data_is_sample": sample, "path": f"runs/{profile}/{model}_seed{seed}.json",
            "named_profile": profile, "folder": profile, "deviations": ""}


def records(*rows):
    return pd.DataFrame(list(rows), columns=RECORD_COLUMNS)


@pytest.fixture(scope="module")
def claim_list():
    return C.load_claims(CLAIMS)


def by_id(claim_list, *ids):
    return [c for c in claim_list if c.id in ids]


def row(table, cid):
    return table.set_index("id").loc[cid]


# ------------------------------------------------------------------ the claims file


def test_claims_file_loads_with_unique_ids_and_tolerances(claim_list):
    ids = [c.id for c in claim_list]
    assert len(ids) == len(set(ids))
    assert {c.kind for c in claim_list} <= set(C.KINDS)
    for c in claim_list:
        assert c.tolerance.get("rule"), c.id
        assert c.quote and c.section and c.measure
    # the report's headline numbers are in it
    e1 = by_id(claim_list, "E1")[0]
    assert (e1.value, e1.sd, e1.n, e1.model) == (2.98, 0.04, 3, "se_res2net29")


@pytest.mark.needs_shared(REPORT)
def test_every_quote_is_in_the_report(claim_list):
    norm = lambda s: re.sub(r"\s+", " ", s).strip()  # noqa: E731 (the report pads its tables with spaces)
    text = norm(REPORT.read_text(encoding="utf-8"))
    for c in claim_list:
        assert norm(c.quote) in text, f"{c.id}: quote not found in the report: {c.quote!r}"


def test_every_claimed_number_appears_in_its_quote(claim_list):
    for c in claim_list:
        if c.kind in ("ranking", "ordering"):
            continue
        assert f"{c.value:g}".lstrip("0") in c.quote.replace("−", "-") or f"{c.value:.2f}" in c.quote, c.id


def test_bad_claims_files_are_refused(tmp_path):
    base = ("schema: se_res2net.claims/1\ntolerances:\n  params: {rule: r, rel: 0.05}\nclaims:\n"
            "  - {id: X, text: t, section: s, quote: q, kind: %s, models: [m], value: 1, unit: M, measure: m}\n")
    p = tmp_path / "c.yaml"
    p.write_text(base % "nonsense")
    with pytest.raises(ValueError, match="unknown kind"):
        C.load_claims(p)
    p.write_text(base % "macs")
    with pytest.raises(ValueError, match="no tolerance"):
        C.load_claims(p)
    p.write_text((base % "params") + "  - {id: X, text: t, section: s, quote: q, kind: params, models: [m], "
                 "value: 1, unit: M, measure: m}\n")
    with pytest.raises(ValueError, match="duplicate id"):
        C.load_claims(p)
    with pytest.raises(FileNotFoundError):
        C.load_claims(tmp_path / "missing.yaml")


# ------------------------------------------------------------------ trained-network claims


def test_error_measured_only_under_smoke_is_not_yet_measured(claim_list):
    t = C.ledger(by_id(claim_list, "E1"), records(*(rec("smoke", "se_res2net29", s, 80.0 + s, "CPU x") for s in range(3))))
    r = row(t, "E1")
    assert r["verdict"] == C.NOT_YET
    assert r["profile"] == "smoke" and r["hardware"] == "CPU x"
    assert "81.00 ± 1.00" in r["measured"]
    assert "full" in r["note"] and "smoke" in r["note"]


def test_smoke_runs_are_set_aside_once_another_profile_has_complete_runs(claim_list):
    """As on the results pages: a claim whose models have only smoke runs shows no number once budget or full has
    complete runs (of any model), and says why; budget numbers and the smoke-only ledger are unchanged."""
    smoke = [rec("smoke", m, s, 90.0 + s, "CPU x") for m in ("se_resnet110", "resnet56", "res2net29", "se_res2net29")
             for s in range(3)]
    budget = [rec("budget", m, 0, e, "CPU x") for m, e in (("res2net29", 9.6), ("se_res2net29", 9.4))]
    cl = by_id(claim_list, "E3", "E1", "F4")
    alone = C.ledger(cl, records(*smoke))
    assert "91.00 ± 1.00" in row(alone, "E3")["measured"] and row(alone, "E3")["profile"] == "smoke"
    t = C.ledger(cl, records(*smoke, *budget))
    e3, f4 = row(t, "E3"), row(t, "F4")
    assert e3["measured"] == "—" and e3["profile"] == "—" and e3["verdict"] == C.NOT_YET
    assert "no complete run of se_resnet110 under budget" in e3["note"] and "smoke runs are a plumbing check" in e3["note"]
    assert f4["measured"] == "—" and "set aside now that budget has complete runs" in f4["note"]
    assert row(t, "E1")["profile"] == "budget" and "9.40" in row(t, "E1")["measured"]


def test_error_band_is_our_measured_spread_not_a_fixed_band(claim_list):
    e1 = by_id(claim_list, "E1")  # claimed 2.98
    # mean 3.10, s = 0.10, n = 3: the 95 % t interval is 3.10 ± 4.30·0.0577 = 2.85–3.35 → contains 2.98
    wide = records(*(rec("full", "se_res2net29", s, e) for s, e in enumerate([3.0, 3.1, 3.2])),
                   rec("smoke", "se_res2net29", 0, 90.0))
    r = row(C.ledger(e1, wide), "E1")
    assert C.verdict_category(r["verdict"]) == C.REPRODUCED and r["profile"] == "full"
    assert "2.85–3.35" in r["verdict"]
    # the same mean with a tight spread (s = 0.01): 3.08–3.12 excludes 2.98, though a ±0.3 pp band would not
    tight = records(*(rec("full", "se_res2net29", s, e) for s, e in enumerate([3.09, 3.10, 3.11])))
    r = row(C.ledger(e1, tight), "E1")
    assert C.verdict_category(r["verdict"]) == C.NOT_REPRODUCED and "outside" in r["verdict"]


def test_error_needs_the_reports_three_seeds(claim_list):
    two = records(*(rec("full", "se_res2net29", s, 2.98) for s in range(2)))
    r = row(C.ledger(by_id(claim_list, "E1"), two), "E1")
    assert C.verdict_category(r["verdict"]) == C.NOT_YET and "se_res2net29 2 of 3" in r["verdict"]
    assert "n=2" in r["measured"]
    # a repeated seed is one seed
    dup = records(*(rec("full", "se_res2net29", 0, 2.98 + 0.01 * i) for i in range(3)))
    assert "1 of 3" in row(C.ledger(by_id(claim_list, "E1"), dup), "E1")["verdict"]


def test_a_record_that_claims_full_without_satisfying_it_never_counts(claim_list, tmp_path):
    from fakes import make_record, write_record
    from se_res2net.audit.results import load_records

    root = tmp_path / "runs"
    for seed in range(3):  # three 30-epoch runs that call themselves full and sit in full/
        liar = make_record("se_res2net29", seed, 2.98, profile="budget")
        liar["profile"] = liar["config"]["profile"] = "full"
        write_record(root, liar, folder="full")
    df = load_records(root)
    assert set(df["named_profile"]) == {"full"} and set(df["profile"]) == {"budget"}
    r = row(C.ledger(by_id(claim_list, "E1"), df), "E1")
    assert r["verdict"] == C.NOT_YET and r["profile"] == "budget"
    # the same errors from records that do satisfy the protocol decide it
    for seed in range(3):
        write_record(root, make_record("se_res2net29", seed, 2.98 + 0.02 * seed, profile="full"), folder="elsewhere")
    r = row(C.ledger(by_id(claim_list, "E1"), load_records(root)), "E1")
    assert C.verdict_category(r["verdict"]) == C.REPRODUCED and r["profile"] == "full"


def test_sample_data_and_failed_runs(claim_list):
    t = C.ledger(by_id(claim_list, "E2"), records(rec("smoke", "res2net29", 0, 70.0, sample=True),
                                                  rec("smoke", "res2net29", 1, math.nan, status="failed")))
    r = row(t, "E2")
    assert "n=1" in r["measured"] and "sample" in r["note"]


def test_no_records_at_all(claim_list):
    t = C.ledger(claim_list, records(), [], None, [])
    assert list(t.columns) == C.LEDGER_COLUMNS
    assert len(t) == len(claim_list)
    cats = {cid: C.verdict_category(v) for cid, v in zip(t["id"], t["verdict"])}
    for c in claim_list:
        want = C.UNTESTABLE if c.kind in ("iou", "literature") else C.NOT_YET
        assert cats[c.id] == want, c.id


def _full(errs, n=3, spread=0.0):
    return [rec("full", m, s, e + spread * (s - 1)) for m, e in errs.items() for s in range(n)]


def test_ranking_gaps_must_be_resolved_by_the_measured_spread(claim_list):
    r1 = by_id(claim_list, "R1")
    errs = {"resnet56": 6.0, "densenet_bc100": 4.0, "se_resnet110": 5.0, "res2net29": 3.5, "se_res2net29": 3.0}
    assert C.verdict_category(row(C.ledger(r1, records(*_full(errs, spread=0.05))), "R1")["verdict"]) == C.REPRODUCED
    # se_res2net29 lowest by 0.06 pp, but seeds spread ±0.2 pp: the gap is within the noise
    close = dict(errs, res2net29=3.06)
    r = row(C.ledger(r1, records(*_full(close, spread=0.2))), "R1")
    assert C.verdict_category(r["verdict"]) == C.INCONCLUSIVE and "res2net29" in r["verdict"]
    # another model resolved lower
    r = row(C.ledger(r1, records(*_full(dict(errs, densenet_bc100=2.0), spread=0.05))), "R1")
    assert C.verdict_category(r["verdict"]) == C.NOT_REPRODUCED and "densenet_bc100 < se_res2net29" in r["verdict"]
    partial = records(rec("full", "se_res2net29", 0, 3.0), rec("full", "res2net29", 0, 3.5))
    r = row(C.ledger(r1, partial), "R1")
    assert r["verdict"] == C.NOT_YET and "missing" in r["note"]


def test_ablation_ordering_claim(claim_list):
    a5 = by_id(claim_list, "A5")
    ordered = {"se_res2net29": 2.9, "se_res2net29_streams12": 3.2, "se_res2net29_last_stream": 3.5, "res2net29": 3.8}
    assert C.verdict_category(row(C.ledger(a5, records(*_full(ordered, spread=0.05))), "A5")["verdict"]) == C.REPRODUCED
    swapped = dict(ordered, se_res2net29_streams12=3.7)  # streams12 resolved above last_stream
    r = row(C.ledger(a5, records(*_full(swapped, spread=0.05))), "A5")
    assert C.verdict_category(r["verdict"]) == C.NOT_REPRODUCED
    report_like = {"se_res2net29": 2.98, "se_res2net29_streams12": 3.04, "se_res2net29_last_stream": 3.12, "res2net29": 3.45}
    r = row(C.ledger(a5, records(*_full(report_like, spread=0.15))), "A5")
    assert C.verdict_category(r["verdict"]) == C.INCONCLUSIVE  # 0.06 pp apart with a 0.15 pp spread


def test_statistics_claims_and_the_reports_own_consistency(claim_list):
    s = by_id(claim_list, "S1", "S2", "S3")
    recs = records(*(rec("full", "res2net29", i, e) for i, e in enumerate([3.40, 3.50, 3.45])),
                   *(rec("full", "se_res2net29", i, e) for i, e in enumerate([2.95, 3.00, 2.99])))
    t = C.ledger(s + by_id(claim_list, "E1", "E2"), recs)
    assert C.verdict_category(row(t, "S1")["verdict"]) == C.REPRODUCED  # Δ ≈ 0.47 inside the Welch interval
    assert C.verdict_category(row(t, "S2")["verdict"]) == C.REPRODUCED  # p < 0.05, an improvement
    assert C.verdict_category(row(t, "S3")["verdict"]) == C.NOT_REPRODUCED  # d ≈ 10, CI far above 1.3
    # the report's own table (3.45±0.05 vs 2.98±0.04, n=3) gives p=0.005 or d=1.3 under no reading of ±
    for cid in ("S2", "S3"):
        assert row(t, cid)["class"] == C.INCONSISTENT
        assert row(t, cid)["report check"].startswith(C.INCONSISTENT)
        assert "standard error" in row(t, cid)["report check"] and "ddof=0" in row(t, cid)["report check"]
    assert row(t, "S1")["report check"].startswith("consistent") and row(t, "S1")["class"] == C.REPRODUCED
    assert "power" not in row(t, "S2")["note"]  # reproduced: nothing to weigh
    # not separated at a wide spread: the verdict says how likely the test was to detect the claimed Δ at that spread
    wide = records(*(rec("full", "res2net29", i, e) for i, e in enumerate([3.2, 3.8, 3.5])),
                   *(rec("full", "se_res2net29", i, e) for i, e in enumerate([3.0, 3.6, 3.3])))
    r = row(C.ledger(s, wide), "S2")
    assert C.verdict_category(r["verdict"]) == C.NOT_REPRODUCED
    from se_res2net.audit.stats import t_test_power

    assert (f"at our pooled σ = 0.30 pp, 3 + 3 seeds detect the claimed Δ = 0.47 pp with a power of "
            f"{t_test_power(0.47, 0.3, 3, 3):.2f}") in r["note"]
    only_smoke = records(rec("smoke", "res2net29", 0, 80.0), rec("smoke", "se_res2net29", 0, 79.0))
    r = row(C.ledger(s, only_smoke), "S2")
    assert r["verdict"] == C.NOT_YET and r["profile"] == "smoke"


def test_a_reading_of_plus_minus_that_reconciles_makes_the_claim_consistent(tmp_path):
    # p = 0.005 IS what 3.45 ± 0.10 vs 2.98 ± 0.10 (n=3, sample SDs) give (p = 0.0045): the check must say consistent
    text = CLAIMS.read_text(encoding="utf-8").replace("sd: 0.05\n", "sd: 0.10\n", 1).replace("sd: 0.04\n", "sd: 0.10\n", 1)
    p = tmp_path / "claims.yaml"
    p.write_text(text, encoding="utf-8")
    checks = C.report_checks(C.load_claims(p))
    assert checks["S2"].consistent, checks["S2"].text
    assert not C.report_checks(C.load_claims(CLAIMS))["S2"].consistent


def test_report_statistics_feeds_report_consistency(claim_list):
    from se_res2net.audit.stats import report_consistency

    kw = C.report_statistics(claim_list)
    assert kw["resolution"] == 0.005 and kw["n_a"] == 3
    rep = report_consistency(**kw)
    assert not rep.consistent
    eff = C.report_efficiency_rows(claim_list)
    assert {r["claim"] for r in eff} == {"F1", "F2"}


def test_report_checks_decided_by_the_reports_own_numbers(claim_list):
    checks = C.report_checks(claim_list, {"block_channels": 64, "se_ratio": 16})
    # the efficiency table's deltas are taken against ResNet-56, the only row that gives them
    assert checks["F3"].consistent and "resnet56 (the only one)" in checks["F3"].text
    assert checks["F1"].consistent and checks["O1"].consistent and checks["O2"].consistent
    # SE-ResNet block 0.36 M vs ResNet block 0.18 M, while the report's SE adds 2·64²/16 = 512 weights
    assert not checks["B3"].consistent and "512 weights" in checks["B3"].text
    assert checks["B7"].consistent  # 0.20 vs 0.19 is within rounding of +512
    assert checks["A5"].consistent and checks["R1"].consistent


# ------------------------------------------------------------------ counted claims


def test_counts_are_judged_to_the_reports_rounding(claim_list):
    sel = by_id(claim_list, "P3", "P4", "M5")
    rows = [{"model": "se_resnet110", "params": 1.714e6, "macs": 1e8},  # 1.714 rounds to 1.71
            {"model": "densenet_bc100", "params": 0.769e6, "macs": 1e8},  # 0.77 is not "0.80"
            {"model": "resnet56", "params": 0.86e6, "macs": 125.49e6}]
    t = C.ledger(sel, records(), rows)
    assert C.verdict_category(row(t, "P3")["verdict"]) == C.REPRODUCED and "±0.005 M" in row(t, "P3")["verdict"]
    assert C.verdict_category(row(t, "P4")["verdict"]) == C.NOT_REPRODUCED  # "0.80" printed: ±0.005
    assert C.verdict_category(row(t, "M5")["verdict"]) == C.REPRODUCED  # 125.49 within 125 ± 0.5
    assert row(t, "P3")["profile"] == C.COUNTED


def test_searched_widths_are_consistent_by_construction(claim_list):
    sel = by_id(claim_list, "P1", "P2", "M1", "O1", "O3")
    rows = [{"model": "se_res2net29", "params": 0.65e6, "macs": 102e6},
            {"model": "res2net29", "params": 0.63e6, "macs": 100e6}]
    t = C.ledger(sel, records(), rows)
    for cid in ("P1", "P2", "M1", "O1", "O3"):
        assert row(t, cid)["class"] == C.BY_CONSTRUCTION, cid
        assert "confirms nothing" in row(t, cid)["verdict"]
    assert "grid search" in row(t, "P2")["note"]


def test_se_flop_overhead_is_judged_on_every_op(claim_list):
    o2 = by_id(claim_list, "O2")
    rows = [{"model": "se_res2net29", "params": 1, "macs": 100.02e6, "flops_torch_M": 200.04, "flops_all_M": 204.0,
             "flops_se_M": 2.0},
            {"model": "res2net29", "params": 1, "macs": 100e6, "flops_torch_M": 200.0, "flops_all_M": 200.0}]
    r = row(C.ledger(o2, records(), rows), "O2")
    assert C.verdict_category(r["verdict"]) == C.REPRODUCED  # +2 % counting the SE mean and multiply
    assert "+2.00 % (every op)" in r["measured"] and "thop MACs: +0.020 %" in r["note"]


def test_block_claims_use_the_block_table(claim_list):
    sel = by_id(claim_list, "B7", "B8")
    blocks = [{"block": "SE-Res2Net", "params_M": 0.2, "macs_M": 50.0, "resolution": "32x32"}]
    t = C.ledger(sel, records(), [], None, blocks)
    assert C.verdict_category(row(t, "B7")["verdict"]) == C.REPRODUCED
    assert C.verdict_category(row(t, "B8")["verdict"]) == C.NOT_REPRODUCED


def test_efficiency_under_full(claim_list):
    f2, f6 = by_id(claim_list, "F2"), by_id(claim_list, "F6")
    cx = [{"model": "res2net29", "params": 0.63e6, "macs": 1e8}, {"model": "se_res2net29", "params": 0.65e6, "macs": 1e8}]
    recs = records(*(rec("full", "res2net29", s, 3.5 + 0.02 * (s - 1)) for s in range(3)),
                   *(rec("full", "se_res2net29", s, 3.0 + 0.02 * (s - 1)) for s in range(3)))
    r = row(C.ledger(f2, recs, cx), "F2")
    assert C.verdict_category(r["verdict"]) == C.REPRODUCED  # 0.02 / 0.5 = 0.04, drop resolved
    assert C.verdict_category(row(C.ledger(f6, recs, cx), "F6")["verdict"]) == C.REPRODUCED  # −0.47 vs −0.5 ± 0.06
    noisy = records(*(rec("full", "res2net29", s, 3.5 + 0.5 * (s - 1)) for s in range(3)),
                    *(rec("full", "se_res2net29", s, 3.3 + 0.5 * (s - 1)) for s in range(3)))
    r = row(C.ledger(f2, noisy, cx), "F2")
    assert C.verdict_category(r["verdict"]) == C.INCONCLUSIVE and "includes 0" in r["verdict"]


# ------------------------------------------------------------------ Grad-CAM


def test_gradcam_iou_is_measured_but_not_testable_as_stated(claim_list):
    g = by_id(claim_list, "G1", "G2")
    metrics = {
        "settings": {"n_mosaics": 10, "confidence": 0.5, "confidence_filter": "on"},
        "data": {"source": "folder", "is_sample": False},
        "models": {"se_res2net29": {"model": "se_res2net29", "checkpoint": "book/runs/smoke/checkpoints/se_res2net29_seed0.pt",
                                    "trained": True, "mean_iou": {"0.5": 0.41, "0.3": 0.35}, "mean_energy": 0.52}},
    }
    t = C.ledger(g, records(rec("smoke", "se_res2net29", 0, 80.0, device="CPU y")), [], metrics)
    r = row(t, "G1")
    assert C.verdict_category(r["verdict"]) == C.UNTESTABLE and "protocol" in r["verdict"]
    assert "IoU@0.5 0.410" in r["measured"] and "energy 0.520" in r["measured"]
    assert r["profile"] == "smoke" and r["hardware"] == "CPU y"
    assert "not comparable" in r["note"]
    assert C.verdict_category(row(t, "G2")["verdict"]) == C.UNTESTABLE  # res2net29 absent: still untestable
    assert row(t, "G2")["measured"] == "—"


def test_gradcam_profile_comes_from_the_checkpoints_run_record():
    # the checkpoint sits under smoke/, but its run record satisfies budget: budget it is
    recs = records(rec("budget", "se_res2net29", 0, 10.0))
    recs["folder"] = "smoke"
    entry = {"checkpoint": "book/runs/smoke/checkpoints/se_res2net29_seed0.pt", "trained": True}
    assert C.gradcam_run_profile(entry, recs) == "budget"
    assert C.gradcam_run_profile({**entry, "checkpoint": "book/runs/smoke/checkpoints/other_seed0.pt"}, recs).startswith("unknown")
    assert C.gradcam_run_profile({"checkpoint": None, "trained": False}, recs) == "untrained"


def test_gradcam_hardware_and_state_are_the_checkpoints_own_run(claim_list):
    # seed 0 trained on a CPU, seed 1 of the same model and profile on a GPU: the Grad-CAM of seed 0's
    # checkpoint names the CPU alone, and says it is one run; an unfinished run's checkpoint says so
    g = by_id(claim_list, "G2")
    recs = records(rec("budget", "res2net29", 0, 9.5, device="CPU x"), rec("budget", "res2net29", 1, 9.0, device="GPU y"),
                   rec("budget", "res2net29", 2, None, device="GPU y", status="running", epochs=19, planned=30))
    entry = {"model": "res2net29", "checkpoint": "book/runs/budget/checkpoints/res2net29_seed0.pt", "trained": True,
             "epoch": 30, "mean_iou": {"0.5": 0.2}, "mean_energy": 0.6}
    metrics = {"settings": {"n_mosaics": 10, "confidence": 0.5}, "data": {"is_sample": False},
               "models": {"res2net29": entry}}
    r = row(C.ledger(g, recs, [], metrics), "G2")
    assert r["hardware"] == "CPU x" and r["profile"] == "budget"
    assert "one run (seed 0)" in r["note"] and "unfinished" not in r["note"]
    assert C.gradcam_run(entry, recs)["seed"] == 0
    unfinished = {**entry, "checkpoint": "book/runs/budget/checkpoints/res2net29_seed2.pt", "epoch": 19}
    r = row(C.ledger(g, recs, [], {**metrics, "models": {"res2net29": unfinished}}), "G2")
    assert r["hardware"] == "GPU y" and "checkpoint of an unfinished run (epoch 19 of 30)" in r["note"]
    assert C.gradcam_run({**entry, "checkpoint": "book/runs/budget/checkpoints/res2net29_seed7.pt"}, recs) is None


def test_gradcam_profile_from_checkpoint_path():
    assert C.gradcam_profile({"checkpoint": "book/runs/budget/checkpoints/x.pt"}) == "budget"
    assert C.gradcam_profile({"checkpoint": None, "trained": False}) == "untrained"
    assert C.gradcam_profile({"checkpoint": "/elsewhere/x.pt"}) == "unknown"


# ------------------------------------------------------------------ book helpers


def test_headline_profile_is_the_most_faithful_with_a_complete_run():
    recs = records(rec("smoke", "a", 0, 80.0, device="CPU"), rec("budget", "a", 0, 10.0, device="H100"),
                   rec("full", "b", 0, math.nan, device="H100", status="failed"))
    assert C.headline_profile(recs) == "budget"
    assert C.headline_profile(records()) is None


def test_run_pages_link_existing_notebooks(tmp_path):
    (tmp_path / "runs" / "smoke").mkdir(parents=True)
    (tmp_path / "runs" / "smoke" / "a_seed0.ipynb").write_text("{}")
    pages = C.run_pages(records(rec("smoke", "a", 0, 80.0), rec("smoke", "a", 1, 80.0)), tmp_path)
    assert pages["notebook"].tolist() == ["runs/smoke/a_seed0.html", ""]


def test_run_pages_show_an_unfinished_run_as_incomplete_with_its_last_epoch(tmp_path):
    killed = rec("full", "a", 2, math.nan, status="running", epochs=120, planned=300, last=7.5)
    pages = C.run_pages(records(rec("full", "a", 0, 3.1, epochs=300, planned=300), killed), tmp_path)
    done, cut = pages.iloc[0], pages.iloc[1]
    assert (done["state"], done["epochs"], done["final_test_error"]) == ("complete", "300 of 300", 3.1)
    assert math.isnan(done["last logged test error (not a result)"])
    assert (cut["state"], cut["epochs"]) == ("incomplete", "120 of 300")
    assert math.isnan(cut["final_test_error"]) and cut["last logged test error (not a result)"] == 7.5
    assert "running" not in pages.to_string()


def test_claims_table_and_models(claim_list):
    t = C.claims_table(claim_list)
    assert len(t) == len(claim_list)
    models = C.claim_models(claim_list)
    assert models[:5] == ["resnet56", "densenet_bc100", "se_resnet110", "res2net29", "se_res2net29"]


def test_pm_readings_table_scales_the_sds(claim_list):
    t = C.pm_readings_table(claim_list).set_index("± read as")
    assert t.at["standard error", "sample SD, Res2Net-29"] == pytest.approx(0.05 * math.sqrt(3))
    assert t.at["population SD (ddof=0)", "sample SD, SE-Res2Net-29"] == pytest.approx(0.04 * math.sqrt(3 / 2))
    # p and d to two significant digits, never in exponent notation
    assert t.at["sample SD (ddof=1)", "implied p"] == "0.00029 (0.00013–0.00064)"
    assert t.at["sample SD (ddof=1)", "implied d"] == "10 (9.2–12)"
    assert set(t["claimed p = 0.005 fits"]) == {"no"} and set(t["claimed d = 1.3 fits"]) == {"no"}


def test_profile_table_is_one_column_per_profile_with_readable_settings():
    from se_res2net.training.profiles import PROFILES

    t = C.profile_table()
    assert list(t.columns) == list(PROFILES)
    assert "batch_size" not in t.index and "batch size" in t.index and "weight decay" in t.index
    for name, p in PROFILES.items():
        assert t.at["epochs", name] == str(p.epochs)
        assert t.at["lr factor at a milestone", name] == f"{p.gamma:g}"
        assert t.at["training images", name] == ("all" if p.train_subset is None else f"{p.train_subset:,}")
    assert t.at["meant for", "smoke"] == "CPU" and t.at["augmentation", "full"] == "pad 4, random crop, flip"


def test_one_run_a_side_says_the_interval_is_undefined_not_nan(claim_list):
    # the first complete runs are one seed of each model: no variance, so no Welch interval to print
    recs = records(rec("budget", "res2net29", 0, 9.63), rec("budget", "se_res2net29", 0, 9.35))
    t = C.ledger(by_id(claim_list, "S1", "F4", "F6"), recs)
    for cid in ("S1", "F6"):
        measured = row(t, cid)["measured"]
        assert "nan" not in measured and "Welch CI undefined: one run on a side" in measured, measured
        assert "n=1 vs 1" in measured and row(t, cid)["verdict"] == C.NOT_YET
    assert row(t, "F6")["measured"].startswith("ΔError = -0.28 pp")
    two = records(*(rec("budget", "res2net29", s, 9.6 + 0.1 * s) for s in range(2)),
                  *(rec("budget", "se_res2net29", s, 9.3 + 0.1 * s) for s in range(2)))
    assert re.search(r"95% Welch CI [+-]\d+\.\d\d to [+-]\d+\.\d\d", row(C.ledger(by_id(claim_list, "S1"), two), "S1")["measured"])
