"""The summary page's computations (se_res2net.audit.summary) and the quoted report (claims.quote_html)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from se_res2net.audit import claims, summary
from se_res2net.audit.results import load_records
from tests.fakes import make_record, write_record

ROOT = Path(__file__).resolve().parent.parent


def _ledger(rows):
    return pd.DataFrame(rows, columns=["id", "class"])


def test_family_of_reads_the_prefix_and_refuses_unknown_ids():
    assert summary.family_of("E1") == summary.family_of("E12") == summary.FAMILIES[0][1]
    assert summary.family_of("G3") == "Grad-CAM IoU"
    with pytest.raises(ValueError, match="FAMILIES"):
        summary.family_of("Z1")
    with pytest.raises(ValueError):
        summary.family_of("Ex")  # a prefix with no number is not an id


def test_family_table_counts_each_class_per_family():
    t = _ledger([("E1", claims.NOT_YET), ("E2", claims.IMPLAUSIBLE + " (3 σ)"), ("E3", claims.NOT_YET),
                 ("S2", claims.INCONSISTENT), ("P1", claims.BY_CONSTRUCTION)])
    fam = summary.family_table(t).set_index("family")
    errors = summary.family_of("E1")
    assert fam.loc[errors, "claims"] == "E1, E2, E3"
    assert fam.loc[errors, claims.NOT_YET] == 2 and fam.loc[errors, claims.IMPLAUSIBLE] == 1
    assert fam.loc[summary.family_of("S2"), claims.INCONSISTENT] == 1
    # only the classes present are columns, in the ledger's order; every claim is counted once
    classes = [c for c in fam.columns if c != "claims"]
    assert classes == [c for c in claims.CLASSES if c in classes]
    assert set(classes) == {claims.NOT_YET, claims.IMPLAUSIBLE, claims.INCONSISTENT, claims.BY_CONSTRUCTION}
    assert int(fam[classes].to_numpy().sum()) == len(t)
    # families without claims are left out, the report's order is kept
    assert list(fam.index) == [summary.family_of(i) for i in ("E1", "S2", "P1")]


def test_plot_families_draws_one_bar_segment_per_nonzero_count():
    import matplotlib

    matplotlib.use("Agg")
    t = _ledger([("E1", claims.NOT_YET), ("E2", claims.NOT_YET), ("P1", claims.BY_CONSTRUCTION)])
    ax = summary.plot_families(t)
    widths = sorted(p.get_width() for p in ax.patches if p.get_width() > 0)
    assert widths == [1, 2]
    assert [l.get_text() for l in ax.get_legend().get_texts()] == [claims.BY_CONSTRUCTION, claims.NOT_YET]


def _timed(rec, start, seconds, resumes=()):
    """``rec`` started at ``start`` (ISO, UTC), its epochs taking ``seconds`` each, resumed as ``resumes`` says:
    ``(epoch, time, device_name, device)`` entries."""
    rec["provenance"]["start_time"] = start
    for ep in rec["epochs"]:
        ep["epoch_time_s"] = seconds
    rec["resumes"] = [{"epoch": e, "time": t, "device_name": n, "device": d} for e, t, n, d in resumes]
    return rec


def test_compute_spent_counts_a_shared_device_once_and_a_moved_run_on_each_machine(tmp_path):
    from se_res2net.audit.results import epoch_log

    # two full runs side by side on one GPU, 300 epochs of 6 s each (1800 s apiece), the second 3 s later
    for seed, start in ((0, "2026-12-04T10:00:00Z"), (1, "2026-12-04T10:00:03Z")):
        write_record(tmp_path, _timed(make_record("resnet56", seed, 6.0, profile="full"), start, 6.0))
    # a third one starts when the first ends, 3 s before the second does: the device ran from 10:00 to 11:00
    write_record(tmp_path, _timed(make_record("resnet56", 2, 6.0, profile="full"), "2026-12-04T10:30:00Z", 6.0))
    # a budget run: 10 epochs on a CPU, then 20 on the GPU a day later
    write_record(tmp_path, _timed(make_record("res2net29", 0, 9.0, profile="budget"), "2026-12-03T00:00:00Z", 360.0,
                                  [(10, "2026-12-05T00:00:00Z", "Fake CPU", "cpu")]))
    spent = summary.compute_spent(epoch_log(tmp_path))
    assert list(zip(spent["profile"], spent["machine"])) == [("full", "Fake GPU (GPU)"), ("budget", "Fake CPU (CPU)"),
                                                            ("budget", "Fake GPU (GPU)")]  # the most faithful first
    full = spent.iloc[0]
    assert full["runs"] == 3 and full["epochs"] == 900
    assert full["run-hours"] == pytest.approx(1.5) and full["device-hours"] == pytest.approx(1.0)
    assert (full["first start (UTC)"], full["last end (UTC)"]) == ("2026-12-04 10:00", "2026-12-04 11:00")
    cpu, gpu = spent.iloc[1], spent.iloc[2]
    assert (gpu["epochs"], cpu["epochs"]) == (10, 20) and (gpu["runs"], cpu["runs"]) == (1, 1)
    assert gpu["device-hours"] == pytest.approx(1.0) and cpu["device-hours"] == pytest.approx(2.0)
    assert cpu["first start (UTC)"] == "2026-12-05 00:00" and gpu["last end (UTC)"] == "2026-12-03 01:00"
    assert summary.compute_spent(epoch_log(tmp_path / "none")).empty


def test_an_epoch_that_cannot_be_placed_in_time_still_counts_once(tmp_path):
    from se_res2net.audit.results import epoch_log

    for seed in (0, 1):
        rec = _timed(make_record("resnet56", seed, 6.0, profile="budget"), "2026-12-04T10:00:00Z", 120.0)
        if seed == 1:
            del rec["provenance"]["start_time"]  # a record from before start times were kept
        write_record(tmp_path, rec)
    row = summary.compute_spent(epoch_log(tmp_path)).iloc[0]
    assert row["run-hours"] == pytest.approx(2.0) and row["device-hours"] == pytest.approx(2.0)
    assert row["first start (UTC)"] == "2026-12-04 10:00"


def test_remaining_runs_names_what_is_missing(tmp_path):
    write_record(tmp_path, make_record("resnet56", 0, 6.0, profile="full"))
    write_record(tmp_path, make_record("resnet56", 1, 6.0, profile="full", status="failed"))
    rem = summary.remaining_runs(load_records(tmp_path, include_failed=True), ["resnet56", "res2net29"], [0, 1],
                                 profiles=["full", "budget"]).set_index("profile")
    assert rem.loc["full", "planned runs"] == 4 and rem.loc["full", "done"] == 1 and rem.loc["full", "to run"] == 3
    assert rem.loc["full", "missing"] == "resnet56 (seeds 1); res2net29 (seeds 0, 1)"
    assert rem.loc["budget", "missing"] == "all"
    assert rem.loc["full", "started, not complete"] == "resnet56 seed 1 (150 of 300 epochs, failed)"
    assert rem.loc["budget", "started, not complete"] == "none"
    # a run stopped between epochs (a sweep or GPU block ended): started, resumable, not done
    write_record(tmp_path, make_record("res2net29", 0, None, profile="budget", status="running", logged=2))
    rem = summary.remaining_runs(load_records(tmp_path, include_failed=True), ["resnet56", "res2net29"], [0, 1],
                                 profiles=["full", "budget"]).set_index("profile")
    assert rem.loc["budget", "done"] == 0 and rem.loc["budget", "missing"] == "all"
    assert rem.loc["budget", "started, not complete"] == "res2net29 seed 0 (2 of 30 epochs)"


def test_environments_report_versions_and_recorded_provenance(tmp_path):
    env = summary.build_environment(["pandas", "surely-not-a-package"]).set_index("component")["version"]
    assert env["pandas"] == pd.__version__ and env["surely-not-a-package"] == "not installed"
    write_record(tmp_path, make_record("resnet56", 0, 6.0, profile="full"))
    runs = summary.run_environments(load_records(tmp_path, include_failed=True))
    assert runs.loc[0, "profile"] == "full" and runs.loc[0, "hardware"] == "Fake GPU"
    # a run resumed on other hardware counts each machine once, beside the runs that trained on one of them
    moved = make_record("res2net29", 1, 3.5, "full")
    start = moved["provenance"]["torch"] = "1.0.0"
    moved["provenance"].update(git_commit="a" * 40, python="3.11.7")
    moved["resumes"] = [{"epoch": 100, "device_name": "Other GPU", "device": "cuda", "torch": "9.9.9",
                         "git_commit": "b" * 40, "python": "3.12.3"},
                        {"epoch": 300, "device_name": "Third GPU", "device": "cuda", "torch": "0.0.1",
                         "git_commit": "c" * 40}]  # no epoch left
    write_record(tmp_path, moved)
    runs = summary.run_environments(load_records(tmp_path, include_failed=True))
    assert runs.loc[0, "hardware"] == "Fake GPU, Other GPU"  # not the machine of a resume that trained nothing
    assert load_records(tmp_path).set_index("seed").at[1, "torch"] == f"{start} + 9.9.9"  # the resume that trained
    assert runs.loc[0, "torch"] == "1.0.0, 9.9.9"
    # the code and the Python of each session that trained, the resumes' too (not the one that trained nothing)
    assert runs.loc[0, "code commit(s)"] == "aaaaaaa, bbbbbbb" and runs.loc[0, "Python"] == "3.11.7, 3.12.3"


def _claim(quote, section):
    c = claims.load_claims("book/claims.yaml")[0]
    from dataclasses import replace

    return replace(c, quote=quote, section=section)


def test_quote_html_shows_a_table_row_under_its_header_and_escapes():
    tables = claims.report_tables("book/claims.yaml")
    html = claims.quote_html(_claim("| **SE-Res2Net-29** | **0.65** | 102 | 2.98 | 0.04 |",
                                    "Results › CIFAR-10 Test Error; Features"), tables)
    assert "<th>Model</th>" in html and "<th>±σ</th>" in html
    assert "<td><b>SE-Res2Net-29</b></td>" in html and "|" not in html and "**" not in html
    prose = claims.quote_html(_claim("p < 0.01 & **big**", "Results"), tables)
    assert prose == "<blockquote class='report-quote'>p &lt; 0.01 &amp; <b>big</b></blockquote>"
    # a row of another width than the header is shown without a (wrong) header
    assert "<thead>" not in claims.quote_html(_claim("| a | b |", "Results › CIFAR-10 Test Error"), tables)


def test_every_table_row_quote_of_the_claims_file_finds_its_header():
    tables = claims.report_tables("book/claims.yaml")
    for c in claims.load_claims("book/claims.yaml"):
        if c.quote.strip().startswith("|"):
            assert "<thead>" in claims.quote_html(c, tables), c.id


def test_training_so_far_counts_complete_and_unfinished_runs_by_kind_of_device(tmp_path):
    """The bottom line names every run: a CPU-trained complete run is not left out of the count beside GPU ones,
    and unfinished runs are counted per profile and kind of device."""
    root = tmp_path / "runs"
    for model, seed, device, status in [("res2net29", 0, "cpu", "complete"), ("res2net29", 1, "cuda", "complete"),
                                        ("se_res2net29", 1, "cuda", "complete"), ("se_res2net29", 0, "cpu", "running")]:
        rec = make_record(model, seed, 7.0, profile="budget", status=status, device_name=f"Fake {device}")
        rec["provenance"]["device"] = device
        write_record(root, rec)
    records = load_records(root, include_failed=True)
    text = summary.training_so_far(records, claims.headline_profile(records))
    assert text == ("Training so far: the most faithful profile with complete runs is **budget**, with 3 complete "
                    "runs of 2 models, 1 on a CPU, 2 on a GPU (Fake cpu, Fake cuda). Unfinished: 1 run, 1 on "
                    "a CPU under **budget** (listed under *What remains to run*).")
    failed = make_record("resnet56", 0, None, profile="budget", status="failed")
    write_record(root, failed)
    with_failed = load_records(root, include_failed=True)
    assert summary.training_so_far(with_failed, "budget") == text[:-1] + (
        "; 1 run failed (their errors are listed with the runs that are not results).")
    # a run resumed on another machine: each machine named once, never "A + B" as if it were a third
    moved = make_record("res2net29", 2, 7.0, profile="budget", device_name="Fake cpu")
    moved["provenance"]["device"] = "cpu"
    moved["resumes"] = [{"epoch": 10, "time": "2026-12-05T00:00:00Z", "device_name": "Other cpu", "device": "cpu"}]
    write_record(root / "moved", moved, folder="budget")
    both = load_records(root / "moved", include_failed=True)
    assert "1 complete run of 1 model, 1 on a CPU (Fake cpu, Other cpu)" in summary.training_so_far(both, "budget")
    cpu_only = records[records["device"] == "cpu"]
    assert summary.training_so_far(cpu_only, "budget").endswith("; no GPU has trained a record yet.")
    assert summary.training_so_far(records.iloc[0:0], None) == "No training run yet."


def test_errors_so_far_gives_each_models_error_beside_the_reports_and_says_how_far_from_a_test(tmp_path):
    """The bottom line gives the trained networks' errors (computed from the records, never typed), beside the
    report's claimed errors, with the profile, epochs and seed count that make them indicative or not."""
    claim_list = claims.load_claims(ROOT / "book" / "claims.yaml")
    e1 = next(c for c in claim_list if c.id == "E1")
    root = tmp_path / "runs"
    for model, seed, err, status in [("res2net29", 0, 9.5, "complete"), ("se_res2net29", 0, 9.0, "complete"),
                                     ("se_res2net29", 1, 9.2, "complete"), ("resnet56", 0, None, "running")]:
        write_record(root, make_record(model, seed, err, profile="budget", status=status))
    records = load_records(root, include_failed=True)
    text = summary.errors_so_far(records, "budget", claim_list)
    assert text.startswith("Their test errors under **budget** (30 epochs, at most 2 seeds per model: indicative only, "
                           "they test no claim of the report): ")
    assert "Res2Net-29 9.50 % (the report: 3.45 %)" in text
    assert f"SE-Res2Net-29 9.10 ± 0.14 % (the report: {e1.value:.2f} %)" in text
    assert "ResNet-56" not in text  # no complete run: no number
    # one seed each: said so; a model the report gives no error for has none beside it
    write_record(tmp_path / "one", make_record("res2net29", 0, 9.5, profile="budget"))
    write_record(tmp_path / "one", make_record("res2net29_report", 0, 9.4, profile="budget"))
    one = summary.errors_so_far(load_records(tmp_path / "one", include_failed=True), "budget", claim_list)
    assert "one seed per model" in one and "(the report" not in one.split("; ")[-1]
    write_record(tmp_path / "full", make_record("se_res2net29", 0, 3.1))
    full = load_records(tmp_path / "full", include_failed=True)
    assert summary.errors_so_far(full, "full", claim_list) == (
        "Their test errors under **full** (one seed per model; their verdicts are in the *Claims ledger*): "
        f"SE-Res2Net-29 3.10 % (the report: {e1.value:.2f} %) (*Results*).")
    assert summary.errors_so_far(records, "full", claim_list) == ""  # no complete run under it
    assert summary.errors_so_far(records.iloc[0:0], None, claim_list) == ""


def test_projected_device_hours_prices_a_profile_from_the_epochs_of_another_with_the_same_work(tmp_path):
    import pandas as pd

    from se_res2net.audit.results import TIME_COLUMNS
    from se_res2net.training.profiles import PROFILES

    times = pd.DataFrame([
        {"profile": "budget", "device": "NVIDIA H200 (GPU)", "runs": 6, "models": "res2net29, se_res2net29",
         "epochs_logged": 98, "s_per_epoch": 20.0, "run_min": 10.0, "device_s_per_epoch": 3.4, "measured_h": 0.5},
        {"profile": "smoke", "device": "Fake CPU (CPU)", "runs": 30, "models": "res2net29", "epochs_logged": 30,
         "s_per_epoch": 13.0, "run_min": 0.2, "device_s_per_epoch": 11.0, "measured_h": 0.1},
    ], columns=TIME_COLUMNS)
    out = summary.projected_device_hours(times, runs=30, target="full")
    # the smoke profile trains on 256 images: its epochs are not the full protocol's
    assert list(out["device"]) == ["NVIDIA H200 (GPU)"] and out.iloc[0]["measured under"] == "budget"
    assert out.iloc[0]["hours"] == pytest.approx(PROFILES["full"].epochs * 30 * 3.4 / 3600)
    assert summary.projected_device_hours(times.iloc[0:0], runs=30).empty
