"""The claims ledger (se_res2net.claims) on fake records: verdicts, profiles, tolerances, untestable claims."""

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from se_res2net import claims as C
from se_res2net.results import RECORD_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "book" / "claims.yaml"
REPORT = ROOT.parent / "shared" / "seeds" / "000_7dd082c2c19ddd61.txt"


def rec(profile, model, seed, err, device="Fake GPU", sample=False, status="complete", epochs=1, planned=1,
        last=None):
    return {"profile": profile, "model": model, "seed": seed, "status": status, "final_test_error": err,
            "state": {"running": "incomplete"}.get(status, status), "params": 1e6, "macs": 1e8, "epochs": epochs,
            "planned_epochs": planned, "last_test_error": err if last is None else last,
            "wall_time_s": 10.0, "device_name": device,
            "data_source": "folder", "data_is_sample": sample, "path": f"runs/{profile}/{model}_seed{seed}.json"}


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


@pytest.mark.skipif(not REPORT.is_file(), reason="shared/seeds (the report) is not beside the checkout")
def test_every_quote_is_in_the_report(claim_list):
    norm = lambda s: re.sub(r"\s+", " ", s).strip()  # noqa: E731 (the report pads its tables with spaces)
    text = norm(REPORT.read_text(encoding="utf-8"))
    for c in claim_list:
        assert norm(c.quote) in text, f"{c.id}: quote not found in the report: {c.quote!r}"


def test_every_claimed_number_appears_in_its_quote(claim_list):
    for c in claim_list:
        if c.kind == "ranking":
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


def test_error_under_full_within_and_outside_tolerance(claim_list):
    e1 = by_id(claim_list, "E1")
    near = records(*(rec("full", "se_res2net29", s, 3.1 + 0.01 * s) for s in range(3)),
                   rec("smoke", "se_res2net29", 0, 90.0))
    r = row(C.ledger(e1, near), "E1")
    assert C.verdict_category(r["verdict"]) == C.REPRODUCED and r["profile"] == "full"
    assert "0.30 pp" in r["verdict"]  # max(2 x 0.04, 0.3)
    far = records(*(rec("full", "se_res2net29", s, 4.0 + 0.01 * s) for s in range(3)))
    r = row(C.ledger(e1, far), "E1")
    assert C.verdict_category(r["verdict"]) == C.NOT_REPRODUCED


def test_sample_data_and_failed_runs(claim_list):
    t = C.ledger(by_id(claim_list, "E2"), records(rec("smoke", "res2net29", 0, 70.0, sample=True),
                                                  rec("smoke", "res2net29", 1, math.nan, status="failed")))
    r = row(t, "E2")
    assert "n=1" in r["measured"] and "sample" in r["note"]


def test_no_records_at_all(claim_list):
    t = C.ledger(claim_list, records(), [], None, [])
    assert list(t.columns)[:8] == ["id", "claim", "claimed", "measured", "profile", "hardware", "verdict", "note"]
    assert len(t) == len(claim_list)
    cats = {cid: C.verdict_category(v) for cid, v in zip(t["id"], t["verdict"])}
    assert all(cats[c.id] == (C.UNTESTABLE if c.kind == "iou" else C.NOT_YET) for c in claim_list)


def test_ranking_needs_every_model_under_full(claim_list):
    r1 = by_id(claim_list, "R1")
    errs = {"resnet56": 6.0, "densenet_bc100": 4.0, "se_resnet110": 5.0, "res2net29": 3.5, "se_res2net29": 3.0}
    full = records(*(rec("full", m, s, e) for m, e in errs.items() for s in range(2)))
    assert C.verdict_category(row(C.ledger(r1, full), "R1")["verdict"]) == C.REPRODUCED
    errs["densenet_bc100"] = 2.0
    full = records(*(rec("full", m, s, e) for m, e in errs.items() for s in range(2)))
    r = row(C.ledger(r1, full), "R1")
    assert C.verdict_category(r["verdict"]) == C.NOT_REPRODUCED and "rank 2" in r["measured"]
    partial = records(rec("full", "se_res2net29", 0, 3.0), rec("full", "res2net29", 0, 3.5))
    r = row(C.ledger(r1, partial), "R1")
    assert r["verdict"] == C.NOT_YET and "missing" in r["note"]


def test_statistics_claims_and_the_reports_own_consistency(claim_list):
    s = by_id(claim_list, "S1", "S2", "S3")
    recs = records(*(rec("full", "res2net29", i, e) for i, e in enumerate([3.40, 3.50, 3.45])),
                   *(rec("full", "se_res2net29", i, e) for i, e in enumerate([2.95, 3.00, 2.99])))
    t = C.ledger(s + by_id(claim_list, "E1", "E2"), recs)
    assert C.verdict_category(row(t, "S1")["verdict"]) == C.REPRODUCED  # Δ ≈ 0.47
    assert C.verdict_category(row(t, "S2")["verdict"]) == C.REPRODUCED  # p < 0.05, same sign
    assert C.verdict_category(row(t, "S3")["verdict"]) == C.NOT_REPRODUCED  # d ≈ 10, not 1.3
    # the report's own table (3.45±0.05 vs 2.98±0.04, n=3) cannot give p=0.005 or d=1.3
    assert "INCONSISTENT" in row(t, "S2")["note"] and "INCONSISTENT" in row(t, "S3")["note"]
    assert "consistent with it" in row(t, "S1")["note"]
    only_smoke = records(rec("smoke", "res2net29", 0, 80.0), rec("smoke", "se_res2net29", 0, 79.0))
    r = row(C.ledger(s, only_smoke), "S2")
    assert r["verdict"] == C.NOT_YET and r["profile"] == "smoke"


def test_report_statistics_feeds_report_consistency(claim_list):
    from se_res2net.stats import report_consistency

    kw = C.report_statistics(claim_list)
    assert kw["resolution"] == 0.005 and kw["n_a"] == 3
    rep = report_consistency(**kw)
    assert not rep.consistent
    eff = C.report_efficiency_rows(claim_list)
    assert {r["claim"] for r in eff} == {"F1", "F2"}


# ------------------------------------------------------------------ counted claims


def test_params_and_macs_within_and_outside_tolerance(claim_list):
    sel = by_id(claim_list, "P1", "P2", "M1", "O1")
    rows = [{"model": "se_res2net29", "params": 0.66e6, "macs": 150e6},  # +1.5 % params; MACs ×1.47
            {"model": "res2net29", "params": 0.70e6, "macs": 100e6}]  # params +11 %
    t = C.ledger(sel, records(), rows)
    assert C.verdict_category(row(t, "P1")["verdict"]) == C.REPRODUCED
    assert C.verdict_category(row(t, "P2")["verdict"]) == C.NOT_REPRODUCED
    assert C.verdict_category(row(t, "M1")["verdict"]) == C.NOT_REPRODUCED
    assert "×1.47" in row(t, "M1")["measured"]
    assert row(t, "P1")["profile"] == C.COUNTED
    assert C.verdict_category(row(t, "O1")["verdict"]) == C.NOT_REPRODUCED  # -5.7 % is not +3.2 %


def test_block_claims_use_the_block_table(claim_list):
    sel = by_id(claim_list, "B7", "B8")
    blocks = [{"block": "SE-Res2Net", "params_M": 0.2, "macs_M": 50.0, "resolution": "32x32"}]
    t = C.ledger(sel, records(), [], None, blocks)
    assert C.verdict_category(row(t, "B7")["verdict"]) == C.REPRODUCED
    assert C.verdict_category(row(t, "B8")["verdict"]) == C.NOT_REPRODUCED


def test_efficiency_under_full(claim_list):
    f2 = by_id(claim_list, "F2")
    recs = records(*(rec("full", "res2net29", s, 3.5) for s in range(2)),
                   *(rec("full", "se_res2net29", s, 3.0) for s in range(2)))
    cx = [{"model": "res2net29", "params": 0.63e6, "macs": 1e8}, {"model": "se_res2net29", "params": 0.65e6, "macs": 1e8}]
    r = row(C.ledger(f2, recs, cx), "F2")
    assert C.verdict_category(r["verdict"]) == C.REPRODUCED  # 0.02 / 0.5 = 0.04
    assert "0.02 / 0.47" in r["note"]


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


def test_gradcam_profile_from_checkpoint_path():
    assert C.gradcam_profile({"checkpoint": "book/runs/budget/checkpoints/x.pt"}) == "budget"
    assert C.gradcam_profile({"checkpoint": None, "trained": False}) == "untrained"
    assert C.gradcam_profile({"checkpoint": "/elsewhere/x.pt"}) == "unknown"


# ------------------------------------------------------------------ book helpers


def test_profile_summary_and_headline():
    recs = records(rec("smoke", "a", 0, 80.0, device="CPU"), rec("budget", "a", 0, 10.0, device="H100"),
                   rec("budget", "b", 0, math.nan, device="H100", status="failed"))
    assert C.headline_profile(recs) == "budget"
    s = C.profile_summary(recs).set_index("profile")
    assert list(s.index) == ["budget", "smoke"]
    assert s.loc["budget", "complete runs"] == 1 and s.loc["budget", "incomplete or failed"] == 1
    assert s.loc["budget", "hardware"] == "H100"
    assert C.headline_profile(records()) is None
    assert C.profile_summary(records()).empty


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


def test_caveat_is_carried_into_the_ledger_note():
    import pandas as pd

    from se_res2net.claims import load_claims, ledger
    from se_res2net.results import RECORD_COLUMNS

    from pathlib import Path

    claims = [c for c in load_claims(Path(__file__).resolve().parents[1] / "book" / "claims.yaml") if c.id == "P2"]
    assert claims and "grid search" in claims[0].caveat
    rows = [{"model": "res2net29", "params": 651122, "macs": 106262000}]
    table = ledger(claims, pd.DataFrame(columns=RECORD_COLUMNS), rows)
    assert "grid search" in table.loc[0, "note"]
    assert table.loc[0, "verdict"].startswith("reproduced")
