"""Run records -> tables, against hand computation on fake records written here."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats as sps  # noqa: E402

from se_res2net.audit.results import (  # noqa: E402
    CURVE_COLUMNS,
    RECORD_COLUMNS,
    ablation_table,
    efficiency_rows,
    incomplete_runs,
    load_curves,
    load_records,
    model_order,
    plot_curves,
    results_table,
    significance_table,
    training_devices,
)
from se_res2net.audit.stats import efficiency_table  # noqa: E402

from fakes import make_record, write_record  # noqa: E402

PARAMS = {"res2net29": 630_000, "se_res2net29": 650_000, "resnet56": 860_000,
          "se_res2net29_streams12": 648_000, "zeta_net": 100_000}
MACS = {"res2net29": 50_000_000, "se_res2net29": 51_000_000, "resnet56": 62_500_000,
        "se_res2net29_streams12": 50_800_000, "zeta_net": 10_000_000}
ERRORS = {  # (profile, model) -> final errors of seeds 0,1,2
    ("budget", "res2net29"): [3.40, 3.45, 3.50],
    ("budget", "se_res2net29"): [2.94, 2.98, 3.02],
    ("budget", "resnet56"): [5.70, 5.82, 5.94],
    ("budget", "se_res2net29_streams12"): [3.00, 3.10],
    ("budget", "zeta_net"): [9.0],
    ("smoke", "res2net29"): [80.0, 82.0],
    ("smoke", "se_res2net29"): [79.0, 81.5],
}


def record(model, seed, err, profile="budget", status="complete", n_epochs=None):
    """A record that satisfies ``profile`` (tests/fakes.py), on the fake CPU of these tests."""
    return make_record(model, seed, err, profile=profile, status=status, logged=n_epochs, params=PARAMS[model],
                       macs=MACS[model], device_name="Fake CPU")


def write(root, rec, profile="budget", name=None):
    return write_record(root, rec, folder=profile, name=name)


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for (profile, model), errs in ERRORS.items():
        for seed, err in enumerate(errs):
            write(root, record(model, seed, err, profile=profile), profile)
    # a failed run, a running run and an unrelated JSON file
    write(root, record("se_res2net29", 3, None, status="failed", n_epochs=2))
    write(root, record("res2net29", 4, None, status="running", n_epochs=1))
    (root / "budget" / "summary.json").write_text("{not a record")
    return root


def test_load_records(runs):
    df = load_records(runs)
    assert list(df.columns) == RECORD_COLUMNS
    assert len(df) == sum(len(v) for v in ERRORS.values())
    assert set(df["status"]) == {"complete"}
    row = df[(df.model == "se_res2net29") & (df.seed == 1) & (df.profile == "budget")].iloc[0]
    assert row.final_test_error == 2.98 and row.params == 650_000 and row.epochs == 30
    assert row.device_name == "Fake CPU" and row.data_source == "folder" and not bool(row.data_is_sample)
    assert row.wall_time_s == 12.5 and row.path.endswith("se_res2net29_seed1.json")

    full = load_records(runs, include_failed=True)
    assert len(full) == len(df) + 2
    failed = full[full.status == "failed"].iloc[0]
    assert math.isnan(failed.final_test_error) and failed.epochs == 2 and failed.state == "failed"
    assert set(df["state"]) == {"complete"} and (df["planned_epochs"] == df["epochs"]).all()

    smoke = load_records(runs, profile="smoke")
    assert set(smoke.profile) == {"smoke"} and len(smoke) == 4
    assert len(load_records(runs, profile=["smoke", "budget"])) == len(df)


def test_a_run_killed_between_epochs_is_incomplete_never_a_result(tmp_path):
    root = tmp_path / "runs"
    for seed, err in enumerate([3.4, 3.5]):
        write(root, record("res2net29", seed, err))
    killed = record("res2net29", 2, None, status="running", n_epochs=2)  # stopped after epoch 2 of 30
    write(root, killed)
    # its record names no checkpoint (stopped before the first): nothing to resume from, it starts again
    assert load_records(root, include_failed=True).set_index("seed").at[2, "state"] == "incomplete"
    killed["checkpoint"] = "checkpoints/res2net29_seed2.pt"
    write(root, killed)
    # a checkpoint was written but is not beside the record (git keeps out those of big models): stranded
    assert load_records(root, include_failed=True).set_index("seed").at[2, "state"] == "stranded"
    (root / "budget" / "checkpoints").mkdir()
    (root / "budget" / "checkpoints" / "res2net29_seed2.pt").write_bytes(b"its checkpoint")
    df = load_records(root, include_failed=True)
    row = df[df.seed == 2].iloc[0]
    assert (row.status, row.state, row.epochs, row.planned_epochs) == ("running", "incomplete", 2, 30)
    assert math.isnan(row.final_test_error) and row.last_test_error == killed["epochs"][-1]["test_error"]
    inc = incomplete_runs(df)
    assert inc[["model", "seed", "state", "epochs"]].values.tolist() == [["res2net29", 2, "incomplete", "2 of 30"]]
    t = results_table(df).set_index("model")
    assert t.at["res2net29", "n"] == 2 and t.at["res2net29", "n_failed"] == 1
    assert t.at["res2net29", "mean_error"] == pytest.approx(3.45)  # the stopped run does not count
    assert incomplete_runs(load_records(root)).empty


def test_a_run_resumed_on_other_hardware_names_every_device_that_trained_it(tmp_path):
    """Budget runs here started on an AMD EPYC and went on, a session later, on an Intel Xeon: the record's
    provenance names only the first; its resumes name the rest, and the tables must say both."""
    root = tmp_path / "runs"
    rec = record("res2net29", 0, None, status="running", n_epochs=9)
    rec["provenance"].update(device_name="AMD EPYC", device="cpu")
    rec["resumes"] = [{"epoch": 1, "device_name": "AMD EPYC"},  # same machine, after a stop
                      {"epoch": 5, "device_name": "Intel Xeon"},
                      {"epoch": 7, "device_name": "Intel Xeon"},  # stopped again before epoch 8 ended
                      {"epoch": 7, "device_name": "AMD EPYC"}]
    write(root, rec)
    one = record("se_res2net29", 0, None, status="running", n_epochs=3)
    one["provenance"].update(device_name="AMD EPYC", device="cpu")
    one["resumes"] = [{"epoch": 3, "device_name": "Intel Xeon"}]  # resumed, stopped before an epoch ended
    write(root, one)

    assert training_devices(rec) == [("AMD EPYC", 1, 5), ("Intel Xeon", 6, 7), ("AMD EPYC", 8, 9)]
    assert training_devices(one) == [("AMD EPYC", 1, 3)]
    df = load_records(root, include_failed=True).set_index("model")
    assert df.at["res2net29", "device_name"] == "AMD EPYC + Intel Xeon"
    assert df.at["res2net29", "trained_on"] == "AMD EPYC (epochs 1–5), Intel Xeon (epochs 6–7), AMD EPYC (epochs 8–9)"
    assert df.at["se_res2net29", "device_name"] == "AMD EPYC" and df.at["se_res2net29", "trained_on"] == "AMD EPYC"
    # the pages' "on ..." lists each machine once, not "AMD EPYC + Intel Xeon" as if it were one
    assert R.hardware(df.reset_index()) == "AMD EPYC (CPU), Intel Xeon (CPU)"
    inc = incomplete_runs(df.reset_index()).set_index("model")
    assert inc.at["res2net29", "trained_on"].startswith("AMD EPYC (epochs 1–5)")

    # a run with no resumes and no logged epoch still names its device
    fresh = record("resnet56", 0, None, status="running", n_epochs=0)
    assert training_devices(fresh) == []
    write(root, fresh)
    row = load_records(root, include_failed=True).set_index("model").loc["resnet56"]
    assert (row.device_name, row.trained_on) == ("Fake CPU", "Fake CPU")


def test_missing_root_gives_empty_frames(tmp_path):
    df = load_records(tmp_path / "nope")
    assert df.empty and list(df.columns) == RECORD_COLUMNS
    cur = load_curves(tmp_path / "nope")
    assert cur.empty and list(cur.columns) == CURVE_COLUMNS
    assert results_table(df).empty
    assert ablation_table(df).empty
    assert significance_table(df, [("res2net29", "se_res2net29")]).empty


def test_bad_json_names_the_file(tmp_path):
    p = tmp_path / "budget" / "res2net29_seed0.json"
    p.parent.mkdir(parents=True)
    p.write_text('{"schema": "se_res2net.run/1", "status": ')
    with pytest.raises(ValueError, match="res2net29_seed0.json"):
        load_records(tmp_path)


@pytest.mark.parametrize("mutate", [
    lambda r: r.update(schema="other/1"),
    lambda r: r.pop("epochs"),
    lambda r: r.update(status="done"),
    lambda r: r.update(final_test_error=None),
    lambda r: r.update(final_test_error=250.0),
    lambda r: r.update(seed=7),  # file name says seed 0
])
def test_wrong_schema_names_the_file(tmp_path, mutate):
    rec = record("res2net29", 0, 3.4)
    mutate(rec)
    write(tmp_path, rec, name="res2net29_seed0.json")
    with pytest.raises(ValueError, match="res2net29_seed0.json"):
        load_records(tmp_path)


def test_load_curves(runs):
    cur = load_curves(runs, profile="budget")
    assert list(cur.columns) == CURVE_COLUMNS
    n_budget = sum(len(v) for (p, _), v in ERRORS.items() if p == "budget")
    assert len(cur) == 30 * n_budget
    one = cur[(cur.model == "res2net29") & (cur.seed == 2)].sort_values("epoch")
    assert one.epoch.tolist() == list(range(1, 31))
    assert one.test_error.tolist()[-3:] == pytest.approx([3.50 + 0.02, 3.50 + 0.01, 3.50])
    assert one.lr.tolist() == pytest.approx([0.1] * 15 + [0.01] * 7 + [0.001] * 8)  # budget: /10 at 15 and 22
    assert len(load_curves(runs, profile="budget", include_failed=True)) == 30 * n_budget + 2 + 1


def test_results_table_numbers_and_order(runs):
    t = results_table(load_records(runs, include_failed=True))
    budget = t[t.profile == "budget"]
    assert budget.model.tolist() == ["resnet56", "res2net29", "se_res2net29", "se_res2net29_streams12", "zeta_net"]
    assert t.profile.tolist() == ["budget"] * 5 + ["smoke"] * 2
    r = budget.set_index("model")
    for model in ("res2net29", "se_res2net29", "resnet56"):
        errs = np.array(ERRORS[("budget", model)])
        assert r.at[model, "n"] == 3
        assert r.at[model, "mean_error"] == pytest.approx(errs.mean())
        assert r.at[model, "std_error"] == pytest.approx(errs.std(ddof=1))
        assert r.at[model, "params_m"] == pytest.approx(PARAMS[model] / 1e6)
        assert r.at[model, "macs_m"] == pytest.approx(MACS[model] / 1e6)
        assert r.at[model, "flops_m"] == pytest.approx(2 * MACS[model] / 1e6)
    assert r.at["se_res2net29", "n_failed"] == 1 and r.at["res2net29", "n_failed"] == 1
    assert r.at["zeta_net", "n"] == 1 and math.isnan(r.at["zeta_net", "std_error"])
    assert r.at["se_res2net29", "std_error"] == pytest.approx(0.04)

    only = results_table(load_records(runs), models=["se_res2net29", "res2net29"])
    assert only[only.profile == "budget"].model.tolist() == ["se_res2net29", "res2net29"]


def test_model_order():
    assert model_order(["b", "se_res2net29", "a", "resnet56", "densenet_bc100", "se_resnet110", "res2net29"]) == [
        "resnet56", "densenet_bc100", "se_resnet110", "res2net29", "se_res2net29", "a", "b"]


def _welch_p(a, b):
    a, b = np.asarray(a), np.asarray(b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * sps.t.sf(abs(t), df)


def test_ablation_table(runs):
    t = ablation_table(load_records(runs))
    budget = t[t.profile == "budget"].set_index("model")
    assert budget.index.tolist() == ["res2net29", "se_res2net29_streams12", "se_res2net29"]
    base = ERRORS[("budget", "res2net29")]
    for model in ("se_res2net29", "se_res2net29_streams12"):
        errs = ERRORS[("budget", model)]
        assert budget.at[model, "n"] == len(errs)
        assert budget.at[model, "diff_vs_baseline"] == pytest.approx(np.mean(base) - np.mean(errs))
        assert budget.at[model, "welch_p"] == pytest.approx(_welch_p(base, errs))
        sp = np.sqrt((2 * np.var(base, ddof=1) + (len(errs) - 1) * np.var(errs, ddof=1)) / (3 + len(errs) - 2))
        assert budget.at[model, "cohens_d"] == pytest.approx((np.mean(base) - np.mean(errs)) / sp)
    assert budget.at["se_res2net29", "error"] == "2.98 ± 0.04"
    assert budget.at["se_res2net29", "params_m"] == pytest.approx(0.65)
    assert budget.at["res2net29", "note"] == "reference" and math.isnan(budget.at["res2net29", "welch_p"])
    assert set(t[t.profile == "smoke"].model) == {"res2net29", "se_res2net29"}


def test_significance_table(runs):
    df = load_records(runs)
    t = significance_table(df, [("res2net29", "se_res2net29"), ("resnet56", "missing_model")], n_resamples=500)
    assert t.profile.tolist() == ["budget", "smoke"]
    row = t.iloc[0]
    a, b = ERRORS[("budget", "res2net29")], ERRORS[("budget", "se_res2net29")]
    assert row.baseline == "res2net29" and row.candidate == "se_res2net29"
    assert row["diff"] == pytest.approx(0.47)
    assert row.welch_p == pytest.approx(_welch_p(a, b))
    assert row.student_p == pytest.approx(sps.ttest_ind(a, b).pvalue)
    assert row.ci_low <= 0.47 <= row.ci_high


def test_efficiency_rows_feed_efficiency_table(runs):
    t = results_table(load_records(runs, profile="budget"))
    rows = efficiency_rows(t, [("res2net29", "se_res2net29"), ("res2net29", "nope")])
    assert len(rows) == 1
    e = efficiency_table(rows).iloc[0]
    assert e.delta_params_m == pytest.approx(0.02)
    assert e.delta_error_pct == pytest.approx(2.98 - 3.45)
    assert e.params_per_1pct_drop_m == pytest.approx(0.02 / 0.47)


def test_plot_curves(runs):
    import matplotlib.pyplot as plt

    cur = load_curves(runs, profile="budget")
    ax = plot_curves(cur, models=["res2net29", "se_res2net29"])
    assert ax.get_xlabel() == "epoch" and "error" in ax.get_ylabel()
    assert len(ax.get_lines()) >= 2
    empty = plot_curves(cur.iloc[0:0])  # an empty, labelled Axes
    assert not empty.get_lines() and empty.get_xlabel() == "epoch"
    with pytest.raises(ValueError):
        plot_curves(cur, metric="accuracy")
    plt.close("all")


def test_tables_accept_frames_built_by_hand():
    df = pd.DataFrame({"profile": ["p"] * 4, "model": ["res2net29"] * 2 + ["se_res2net29"] * 2,
                       "seed": [0, 1, 0, 1], "status": ["complete"] * 4,
                       "final_test_error": [3.4, 3.5, 3.0, 3.1], "params": [1e6] * 4, "macs": [2e6] * 4})
    t = results_table(df).set_index("model")
    assert t.at["res2net29", "mean_error"] == pytest.approx(3.45) and t.at["res2net29", "flops_m"] == 4.0


# --------------------------------------------------------------------------- what a reader sees

from types import SimpleNamespace  # noqa: E402

from se_res2net.audit import results as R  # noqa: E402
from se_res2net.audit import claims as C  # noqa: E402


def _claim(id, kind, model, value, sd=None):
    return SimpleNamespace(id=id, kind=kind, model=model, value=value, sd=sd)


CLAIMS = [_claim("E2", "test_error", "res2net29", 3.45, 0.05), _claim("E1", "test_error", "se_res2net29", 2.98, 0.04),
          _claim("P2", "params", "res2net29", 0.63), _claim("P1", "params", "se_res2net29", 0.65),
          _claim("A3", "test_error", "se_res2net29_streams12", 3.04)]


def _curves(n_epochs=4, seeds=(0, 1, 2), models=("res2net29", "se_res2net29"), profile="budget"):
    rng = np.random.default_rng(0)
    rows = [{"profile": profile, "model": m, "seed": s, "epoch": e, "lr": 0.1, "train_loss": 2.0 / e + rng.random(),
             "train_acc": 50.0, "test_loss": 1.0, "test_error": 60.0 / e + 5 * rng.random()}
            for m in models for s in seeds for e in range(1, n_epochs + 1)]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_curve_bands_are_mean_and_sample_sd_over_seeds():
    cur = _curves()
    b = R.curve_bands(cur, "test_error").set_index(["model", "epoch"])
    for (model, epoch), g in cur.groupby(["model", "epoch"]):
        vals = g["test_error"].to_numpy()
        row = b.loc[(model, epoch)]
        assert row["n"] == 3
        assert row["mean"] == pytest.approx(vals.mean())
        assert row["sd"] == pytest.approx(vals.std(ddof=1))
        assert (row["lo"], row["hi"]) == pytest.approx((vals.mean() - vals.std(ddof=1), vals.mean() + vals.std(ddof=1)))
    one = R.curve_bands(_curves(seeds=(0,)), "test_error")
    assert one["sd"].isna().all()  # one seed: no spread, not a zero-width band
    with pytest.raises(ValueError, match="unknown metric"):
        R.curve_bands(cur, "accuracy")


def test_training_curves_draw_mean_lines_with_plus_minus_one_sd_bands():
    cur = _curves()
    fig = R.plot_training_curves(cur, "budget", "Fake GPU (GPU)")
    axes = [a for a in fig.axes]
    assert len(axes) == 2
    assert "budget" in fig._suptitle.get_text() and "Fake GPU (GPU)" in fig._suptitle.get_text()
    assert [a.get_ylabel() for a in axes] == ["test error (%)", "training loss (cross-entropy)"]
    for ax, metric in zip(axes, ("test_error", "train_loss")):
        lines, bands = ax.get_lines(), ax.collections
        assert len(lines) == 2 and len(bands) == 2  # one per model, in report order
        for line, band, model in zip(lines, bands, ["res2net29", "se_res2net29"]):
            g = cur[cur.model == model].groupby("epoch")[metric]
            mean, sd = g.mean().to_numpy(), g.std(ddof=1).to_numpy()
            assert line.get_ydata() == pytest.approx(mean)
            verts = band.get_paths()[0].vertices
            for e, (m, s) in enumerate(zip(mean, sd), start=1):
                ys = verts[np.isclose(verts[:, 0], e), 1]
                assert ys.min() == pytest.approx(m - s) and ys.max() == pytest.approx(m + s)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["Res2Net-29", "SE-Res2Net-29"]
    assert "± 1 SD" in legend.get_title().get_text() and "3 seeds" in legend.get_title().get_text()
    with pytest.raises(ValueError, match="no curves"):
        R.plot_training_curves(cur, "full")


def test_training_curves_of_a_one_epoch_profile_are_points_with_sd_bars():
    cur = _curves(n_epochs=1, profile="smoke")
    fig = R.plot_training_curves(cur, "smoke", "Fake CPU (CPU)")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Res2Net-29", "SE-Res2Net-29"]
    assert "one epoch per run" in fig._suptitle.get_text()
    for y, (model, container) in enumerate(zip(["res2net29", "se_res2net29"], ax.containers)):
        vals = cur.loc[cur.model == model, "test_error"].to_numpy()
        (x0, y0), (x1, y1) = container.lines[2][0].get_segments()[0]
        assert (x0, x1) == pytest.approx((vals.mean() - vals.std(ddof=1), vals.mean() + vals.std(ddof=1)))
        assert y0 == y1 == y
    # every seed shown as its own open circle
    seeds = [c for c in ax.collections if len(c.get_offsets()) == 3]
    assert len(seeds) == 2 and sorted(seeds[0].get_offsets()[:, 0]) == pytest.approx(
        sorted(cur.loc[cur.model == "res2net29", "test_error"]))


def _table_records():
    rows = []
    for model, errs, params in (("res2net29", [3.40, 3.45, 3.50], 651_122), ("se_res2net29", [2.94, 2.98, 3.02], 670_337)):
        for seed, e in enumerate(errs):
            rows.append({"profile": "budget", "model": model, "seed": seed, "status": "complete", "state": "complete",
                         "final_test_error": e, "params": params, "macs": 106_262_272, "device_name": "Fake GPU",
                         "device": "cuda", "data_is_sample": False, "train_size": 50_000, "test_size": 10_000})
    return pd.DataFrame(rows)


def test_results_display_has_human_columns_and_carried_precision():
    table = results_table(_table_records())
    shown = R.results_display(table, CLAIMS, "budget")
    assert list(shown.columns) == ["model", "runs", "test error (%)", "report (%)", "ours − report (pp)",
                                   "params (M)", "MACs (M)"]
    r = shown.set_index("model")
    assert r.at["Res2Net-29", "test error (%)"] == "3.45 ± 0.05"
    assert r.at["SE-Res2Net-29", "report (%)"] == "2.98 ± 0.04"
    assert r.at["Res2Net-29", "ours − report (pp)"] == "+0.00"
    one = R.results_display(results_table(_table_records().query("seed == 0")), CLAIMS, "budget").set_index("model")
    assert one.at["Res2Net-29", "test error (%)"] == "3.40"  # one run: its error alone, not "3.40 ± n/a"
    html = R.styled(shown, R.RESULTS_FORMATS, nowrap=R.RESULTS_NOWRAP).to_html()
    assert "0.651" in html and "0.651122" not in html and "106.3" in html
    assert html.count("white-space: nowrap") >= 1 and "white-space: normal" in html
    assert "max-width: 100%" in html and "font-size: 0.85em" in html
    assert "mean_error" not in html and "params_m" not in html


def test_styled_formats_floats_hides_the_index_and_shows_nan_as_a_dash():
    df = pd.DataFrame({"a": [0.123456, math.nan], "b": ["x", "y"], "n": [1, 2]})
    html = R.styled(df, decimals=2).to_html()
    assert "0.12" in html and "0.123456" not in html and "—" in html
    assert "row_heading" not in html  # no index column


def test_runs_display_links_notebooks_and_shows_where_unfinished_runs_stopped():
    pages = pd.DataFrame({"profile": ["smoke"] * 2, "model": ["res2net29"] * 2, "seed": [0, 1],
                          "state": ["complete", "incomplete"], "final_test_error": [80.0, math.nan],
                          "epochs": ["1 of 1", "0 of 1"], "last logged test error (not a result)": [math.nan, 91.0],
                          "wall_time_s": [9.4, 1.0], "hardware": ["Fake CPU"] * 2,
                          "notebook": ["runs/smoke/res2net29_seed0.html", ""]})
    shown = R.runs_display(pages, "smoke")
    assert shown["run"].tolist() == ['<a href="runs/smoke/res2net29_seed0.html">Res2Net-29, seed 0</a>',
                                     "Res2Net-29, seed 1"]
    assert "stopped at test error (%), not a result" in shown.columns and "hardware" not in shown.columns
    assert "stopped at test error (%), not a result" not in R.runs_display(pages.iloc[:1]).columns


def test_runs_display_shows_which_machine_trained_which_epochs_of_a_run_resumed_elsewhere(tmp_path):
    """Two runs on the same two machines: the page states the hardware once only when no run changed machine."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        r = record("res2net29", seed, None, status="running", n_epochs=7)
        r["provenance"]["device_name"] = "AMD EPYC"
        r["resumes"] = [{"epoch": 5, "device_name": "Intel Xeon"}]
        write(root, r)
    df = load_records(root, include_failed=True)
    shown = R.runs_display(C.run_pages(df, tmp_path), "budget")
    assert shown["hardware"].tolist() == ["AMD EPYC (epochs 1–5), Intel Xeon (epochs 6–7)"] * 2
    same = load_records(root, include_failed=True).assign(trained_on="AMD EPYC", devices=1)
    assert "hardware" not in R.runs_display(C.run_pages(same, tmp_path), "budget").columns


def test_significance_display_prints_p_to_two_significant_digits_and_folds_notes():
    df = _table_records()
    sig = significance_table(df, [("res2net29", "se_res2net29")], n_resamples=200)
    shown = R.significance_display(sig, "budget").iloc[0]
    a, b = [3.40, 3.45, 3.50], [2.94, 2.98, 3.02]
    res = sps.ttest_ind(a, b, equal_var=False)
    lo, hi = res.confidence_interval(0.95)
    assert shown["p"] == np.format_float_positional(res.pvalue, precision=2, fractional=False, unique=False, trim="-")
    assert shown["Welch 95% CI (pp)"] == f"+{lo:.2f} to +{hi:.2f}"
    assert shown["Δ (pp)"] == "+0.47" and shown["n"] == "3 + 3"
    one = significance_table(df[df.seed == 0], [("res2net29", "se_res2net29")], n_resamples=200)
    assert "note" not in R.significance_display(sig).columns  # no comparison has a note: no empty column
    note = R.significance_display(one).iloc[0]["note"]
    assert note.startswith("<details><summary>note</summary>") and "at least 2 values" in note
    assert R.significance_display(one).iloc[0]["p"] == "—"


def test_ablation_display_names_the_variant_and_the_report():
    df = _table_records()
    abl = ablation_table(df)
    shown = R.ablation_display(abl, CLAIMS, "budget").set_index("variant")
    assert "Δ vs Res2Net-29 (pp)" in shown.columns and "diff_vs_baseline" not in shown.columns
    full = shown.loc["SE on all streams (fused output), full SE-Res2Net-29"]
    assert full["report (%)"] == "2.98 ± 0.04" and full["report params (M)"] == "0.65"
    assert full["Δ vs Res2Net-29 (pp)"] == "+0.47" and "note" not in shown.columns  # no notes, no empty column
    assert shown.loc["Res2Net-29, no SE", "Δ vs Res2Net-29 (pp)"] == "reference"
    one = R.ablation_display(ablation_table(df[df.seed == 0]), CLAIMS).set_index("variant")
    assert "at least 2 values" in one.loc["SE on all streams (fused output), full SE-Res2Net-29", "note"]


def test_ablation_lists_a_variant_whose_runs_are_unfinished_beside_the_reports_value():
    """With unfinished runs in the frame, a profile that has a complete variant run lists every variant that has
    a run, so the report's ablation value is on the page before ours is measured; a profile with no complete run
    of a variant has no table (the page says so in a sentence instead)."""
    df = _table_records()
    unfinished = {**df.iloc[0].to_dict(), "model": "se_res2net29_streams12", "status": "running", "state": "incomplete",
                  "final_test_error": math.nan, "params": 660_777}
    df = pd.concat([df, pd.DataFrame([unfinished, {**unfinished, "profile": "full"}])], ignore_index=True)
    abl = ablation_table(df)
    assert set(abl.profile) == {"budget"}
    row = abl.set_index("model").loc["se_res2net29_streams12"]
    assert (row.n, row.n_not_complete, row.error) == (0, 1, "") and math.isnan(row.diff_vs_baseline)
    shown = R.ablation_display(abl, CLAIMS, "budget").set_index("variant")
    streams12 = shown.loc[dict(R.ABLATION_VARIANTS)["se_res2net29_streams12"]]
    assert streams12["n"] == "0 (+1 not complete)" and streams12["test error (%)"] == "—"
    assert streams12["report (%)"].startswith("3.04") and streams12["Δ vs Res2Net-29 (pp)"] == "—"
    assert streams12["params (M)"] == pytest.approx(0.660777)
    assert shown.loc["SE on all streams (fused output), full SE-Res2Net-29", "n"] == "3"
    # complete runs alone (what the page passed before): the unfinished variant is not listed
    assert "se_res2net29_streams12" not in set(ablation_table(df[df.status == "complete"]).model)


def test_error_vs_params_marks_ours_and_the_reports_claims():
    table = results_table(_table_records())
    fig = R.plot_error_vs_params(table, CLAIMS, "Fake GPU (GPU)")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "parameters (M)"
    pts = {}
    for c in ax.containers:
        line = c.lines[0]
        pts[line.get_marker()] = pts.get(line.get_marker(), []) + [(line.get_xdata()[0], line.get_ydata()[0], c)]
    ours = sorted(pts["s"])  # budget profile: squares
    assert [v for x, y, _ in ours for v in (x, y)] == pytest.approx([0.651122, 3.45, 0.670337, 2.98])
    (_, y0), (_, y1) = ours[0][2].lines[2][0].get_segments()[0]
    assert (y0, y1) == pytest.approx((3.45 - 0.05, 3.45 + 0.05))  # ± 1 SD of the seeds
    stars = sorted((x, y) for x, y, _ in pts["*"])
    assert [v for xy in stars for v in xy] == pytest.approx([0.63, 3.45, 0.65, 2.98])  # only models with both an error and a params claim
    assert {t.get_text() for t in ax.texts} == {"E2/P2", "E1/P1"}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "Res2Net-29" in labels and "ours, profile budget: mean ± 1 SD" in labels
    assert any("report's claim" in t for t in labels)
    assert "Fake GPU (GPU)" in ax.get_title()


def test_the_log_axis_labels_enough_ticks_for_a_narrow_range_of_trained_errors():
    def labels(df):
        fig = R.plot_error_vs_params(results_table(df), CLAIMS)
        fig.canvas.draw()
        ax = fig.axes[0]
        lo, hi = ax.get_ylim()
        return {t.get_text() for t in ax.yaxis.get_ticklabels(minor=True) + ax.yaxis.get_ticklabels()
                if t.get_text() and lo <= t.get_position()[1] <= hi}

    trained = _table_records().assign(final_test_error=lambda d: d["final_test_error"] + 2)
    assert {"3", "4", "5"} <= labels(trained)  # 5-5.5 % and the report's stars at 3-3.5 %: less than a decade
    smoke = trained.assign(profile="smoke", final_test_error=trained["final_test_error"] + 85)  # 3-90 %: the 2-3-5 rule
    assert labels(pd.concat([trained, smoke], ignore_index=True)) == {"3", "5", "10", "20", "30", "50", "100"}


def test_plot_differences_draws_welch_intervals_against_zero_and_the_reports_difference():
    df = _table_records()
    sig = significance_table(df, [("res2net29", "se_res2net29")], n_resamples=200)
    claimed = R.claimed_differences(CLAIMS, [("res2net29", "se_res2net29"), ("res2net29", "nope")])
    assert claimed == {("res2net29", "se_res2net29"): pytest.approx(3.45 - 2.98)}
    fig = R.plot_differences(sig, claimed, "Fake GPU (GPU)")
    ax = fig.axes[0]
    (x0, _), (x1, _) = ax.containers[0].lines[2][0].get_segments()[0]
    lo, hi = sps.ttest_ind([3.40, 3.45, 3.50], [2.94, 2.98, 3.02], equal_var=False).confidence_interval(0.95)
    assert (x0, x1) == pytest.approx((lo, hi))
    assert any(line.get_marker() == "*" and line.get_xdata()[0] == pytest.approx(0.47) for line in ax.get_lines())
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.get_lines())  # the zero line
    assert ax.get_yticklabels()[0].get_text().startswith("Res2Net-29 → SE-Res2Net-29\np = ")
    short = R.plot_differences(sig, claimed, name_baseline=False).axes[0]
    assert short.get_yticklabels()[0].get_text().startswith("SE-Res2Net-29\np = ")
    with pytest.raises(ValueError, match="no comparisons"):
        R.plot_differences(sig.iloc[0:0])
    # the legend says why a row has no interval, and only when one has none
    def legend(fig):
        return [t.get_text() for t in fig.legends[0].get_texts()]

    assert not any("one run" in t for t in legend(fig))
    one = df[(df["model"] != "se_res2net29") | (df["seed"] == df["seed"].min())]
    lone = R.plot_differences(significance_table(one, [("res2net29", "se_res2net29")], n_resamples=200), claimed)
    assert not lone.axes[0].containers[0].lines[2]  # no interval drawn
    assert "Welch 95% CI (none where a side has one run)" in legend(lone)[0]


def test_hardware_data_and_profile_note_come_from_the_records():
    df = _table_records()
    assert R.hardware(df, "budget") == "Fake GPU (GPU)"
    assert R.data_description(df, "budget") == "CIFAR-10, 50,000 training / 10,000 test images"
    stopped = dict(df.iloc[0], seed=3, status="running", state="incomplete", final_test_error=math.nan)
    with_stopped = pd.concat([df, pd.DataFrame([stopped])], ignore_index=True)
    assert R.profile_note(with_stopped, "budget") == (
        "Profile budget: 6 complete runs of 2 models, seeds 0–2 (1 more not complete), on Fake GPU (GPU); data: "
        "CIFAR-10, 50,000 training / 10,000 test images.")
    assert R.profile_note(df, "budget").startswith("Profile budget: 6 complete runs of 2 models, seeds 0–2, on ")
    only_stopped = pd.DataFrame([stopped, dict(stopped, seed=4, status="failed", state="failed")])
    assert R.profile_note(only_stopped, "budget") == (
        "Profile budget: no complete run yet, 2 not complete, on Fake GPU (GPU); data: CIFAR-10, 50,000 training / "
        "10,000 test images.")
    elsewhere = dict(stopped, device_name="Other GPU", seed=5)
    assert R.profile_note(pd.concat([df, pd.DataFrame([stopped, elsewhere])], ignore_index=True), "budget") == (
        "Profile budget: 6 complete runs of 2 models, seeds 0–2, on Fake GPU (GPU); 2 more not complete, on "
        "Fake GPU (GPU), Other GPU (GPU); data: CIFAR-10, 50,000 training / 10,000 test images.")
    assert list(R.complete_runs(with_stopped)["seed"]) == list(df["seed"])
    assert R.hardware(pd.DataFrame({"profile": ["x"]}), "x") == "not recorded"
    # several profiles: each machine once (a figure's title read "AMD EPYC (CPU), AMD EPYC (CPU), ..." when two
    # profiles had trained on one machine), and only the profiles named
    smoke = df.assign(profile="smoke")
    two = pd.concat([df, smoke, pd.DataFrame([dict(elsewhere, profile="full")])], ignore_index=True)
    assert R.hardware(two, ["budget", "smoke"]) == "Fake GPU (GPU)"
    assert R.hardware(two, ("budget", "full")) == "Fake GPU (GPU), Other GPU (GPU)"
    assert R.faithful_first(["smoke", "custom", "budget", "full", "smoke"]) == ["full", "budget", "smoke", "custom"]


def test_a_page_sets_the_plumbing_profile_aside_once_a_result_profile_exists():
    # smoke alone is all there is: shown
    assert R.page_profiles(["smoke", "smoke"]) == (["smoke"], [])
    # the first GPU results: smoke set aside, the most faithful first
    assert R.page_profiles(["smoke", "full"]) == (["full"], ["smoke"])
    assert R.page_profiles(["smoke", "budget", "full"]) == (["full", "budget"], ["smoke"])
    # a record that satisfies no profile is a measurement, not a plumbing check: shown, after the named ones
    assert R.page_profiles(["custom", "smoke"]) == (["custom"], ["smoke"])
    assert R.page_profiles([]) == ([], [])


def test_a_profile_whose_runs_are_all_unfinished_neither_leads_nor_sets_the_smoke_checks_aside(tmp_path):
    """The first epochs of a long profile (runs stopped between sessions or GPU blocks) are not a result: the
    smoke table stays the page's only table and plot, and the profile is named as having no complete run."""
    root = tmp_path / "runs"
    for seed, err in enumerate([90.0, 89.0, 91.0]):
        write(root, record("res2net29", seed, err, profile="smoke"), "smoke")
    write(root, record("res2net29", 0, None, status="running", n_epochs=1))
    write(root, record("se_res2net29", 0, None, status="running", n_epochs=1))
    records = load_records(root, include_failed=True)
    table = results_table(records)
    assert set(table["profile"]) == {"smoke", "budget"}  # the table lists the stopped runs' model rows ...
    assert R.profiles_with_results(table) == ["smoke"]  # ... but only smoke has a result
    assert R.page_profiles(R.profiles_with_results(table)) == (["smoke"], [])
    assert R.no_result_note(records, "budget") == (
        "No complete run under profile **budget** yet: 2 runs stopped between epochs or failed, listed under "
        "*Runs that are not results* below.")
    assert R.no_result_note(records, "full") == "No runs under profile **full** yet."
    assert R.no_result_note(records, "budget", listed="listed elsewhere").endswith(
        "2 runs stopped between epochs or failed, listed elsewhere.")  # another page points to where they are
    write(root, record("res2net29", 1, 7.5))  # one complete budget run: budget leads, smoke is set aside
    table = results_table(load_records(root, include_failed=True))
    assert R.profiles_with_results(table) == ["budget", "smoke"]
    assert R.page_profiles(R.profiles_with_results(table)) == (["budget"], ["smoke"])
    assert R.profiles_with_results(table.iloc[0:0]) == []


def test_set_aside_tables_are_folded_with_their_note_and_say_why():
    df = _table_records()
    table = results_table(df)
    html = R.set_aside_html({"budget": R.profile_note(df, "budget")},
                            {"budget": R.styled(R.results_display(table, [], "budget"))}, ["full"])
    assert html.startswith('<details class="set-aside"><summary>Profile budget (a plumbing check, not a result): its '
                           'table, set aside and left out of the plots now that profile full has runs</summary>')
    assert html.endswith("</table>\n</details>") and "Profile budget: 6 complete runs" in html
    assert html.index("</summary>") < html.index("<table") and "SE-Res2Net-29" in html
    assert R.set_aside_html({}, {}, ["full"]) == ""


def test_efficiency_display_names_the_comparison():
    t = results_table(_table_records())
    eff = efficiency_table(efficiency_rows(t, [("res2net29", "se_res2net29")]))
    shown = R.efficiency_display(eff).iloc[0]
    assert shown["baseline → variant"] == "Res2Net-29 → SE-Res2Net-29"
    assert shown["ΔParams (M)"] == "+0.019" and shown["ΔError (pp)"] == "−0.47"
    assert shown["M params per 1 pp error drop"] == "0.041"
    assert "note" not in R.efficiency_display(eff).columns
    eff["claimed ratio"] = [0.04]
    assert R.efficiency_display(eff).iloc[0]["report's ratio"] == "0.04"  # as printed, not padded to "0.040"


def test_parity_record_as_table_and_plot():
    record = {"reference": "eager_fp32", "device": "cpu", "device_name": "Fake CPU",
              "runs": {"eager_fp32": {"describe": "fp32, eager", "max_abs_diff": 0.0, "tolerance": 0.02,
                                      "within_tolerance": True, "final_test_error": 72.0,
                                      "train_loss": [2.3, 2.2, 2.1], "test_loss": [2.3, 2.2, 2.1],
                                      "test_error": [80.0, 75.0, 72.0]},
                       "bf16": {"describe": "bf16 autocast", "max_abs_diff": 0.05, "tolerance": 0.04,
                                "within_tolerance": False, "final_test_error": 70.0,
                                "train_loss": [2.3, 2.25, 2.05], "test_loss": [2.3, 2.2, 2.1],
                                "test_error": [80.0, 74.0, 70.0]}}}
    t = R.parity_display(record)
    assert list(t.columns) == ["variant", "setup", "max |Δ| (nats)", "tolerance", "limit (nats)", "within",
                               "test error (%)"]
    assert t["within"].tolist() == ["yes", "NO"]  # a record older than the noise runs: within its tolerance
    assert t["limit (nats)"].tolist() == [0.02, 0.04]
    assert R.parity_noise_text(record) == "No noise run: fixed tolerances only."
    html = R.styled(t, R.PARITY_FORMATS).to_html()
    assert "0.0500" in html and "72.0" in html
    fig = R.plot_parity(record)
    ax = fig.axes[0]
    ref, bf16 = ax.get_lines()
    assert list(ref.get_ydata()) == [2.3, 2.2, 2.1] and ref.get_color() == "black" and ref.get_linewidth() > bf16.get_linewidth()
    assert "Fake CPU (CPU)" in ax.get_title()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["eager_fp32 (reference)", "bf16"]
    assert all(float(x).is_integer() for x in ax.get_xticks())


def test_a_parity_record_with_seed_noise_shows_the_limit_the_verdict_and_the_noise_curves():
    """bf16 is outside its tolerance but within the seed-to-seed difference of the reference measured in the same
    run: its limit is the noise and it is within; the reference's other seeds are dashed grey curves."""
    record = {"reference": "eager_fp32", "device": "cuda", "device_name": "Fake GPU", "seed": 0,
              "runs": {"eager_fp32": {"describe": "fp32, eager", "max_abs_diff": 0.0, "tolerance": 0.02,
                                      "within_tolerance": True, "limit": 0.07, "within_noise": True, "ok": True,
                                      "final_test_error": 72.0, "train_loss": [2.3, 2.2, 2.1],
                                      "test_loss": [2.3, 2.2, 2.1], "test_error": [80.0, 75.0, 72.0]},
                       "bf16": {"describe": "bf16 autocast", "max_abs_diff": 0.05, "tolerance": 0.04,
                                "within_tolerance": False, "limit": 0.07, "within_noise": True, "ok": True,
                                "final_test_error": 70.0, "train_loss": [2.3, 2.25, 2.05],
                                "test_loss": [2.3, 2.2, 2.1], "test_error": [80.0, 74.0, 70.0]}},
              "noise": {"seeds": [1, 2], "train_loss": {"1": [2.3, 2.27, 2.12], "2": [2.31, 2.13, 2.08]},
                        "max_abs_diff": 0.07}}
    t = R.parity_display(record)
    assert t["within"].tolist() == ["yes", "yes"] and t["limit (nats)"].tolist() == [0.07, 0.07]
    assert "0.0700" in R.styled(t, R.PARITY_FORMATS).to_html()
    text = R.parity_noise_text(record)
    assert "seed(s) 1, 2" in text and "from seed 0" in text and "0.0700 nats" in text
    failed = {**record, "runs": {**record["runs"], "bf16": {**record["runs"]["bf16"], "ok": False}}}
    assert R.parity_display(failed)["within"].tolist() == ["yes", "NO"]  # the record's ok, not within_tolerance
    fig = R.plot_parity(record)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4
    for line, losses in zip(lines[2:], record["noise"]["train_loss"].values()):
        assert line.get_linestyle() == "--" and line.get_color() == "grey" and list(line.get_ydata()) == losses
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "eager_fp32 (reference)", "bf16", "eager_fp32, seed 1 (noise)", "eager_fp32, seed 2 (noise)"]


def test_a_parity_record_says_what_it_trained_on_as_resolved_or_that_it_does_not_know():
    """The first GPU parity record asked for data source "auto" and did not say what that became: the protocol
    page read "10000 training images of the auto". A record now keeps the resolved source (parity.compare)."""
    from se_res2net.audit.results import parity_data_text

    full = {"config": {"data_source": "auto"},
            "data": {"data_source": "folder", "data_is_sample": False, "data_fingerprint": "cc704e8cee08"}}
    assert parity_data_text(full) == "CIFAR-10 (source folder, fingerprint cc704e8c…)"
    assert parity_data_text({"config": {"data_source": "auto"}, "data": {"data_source": "sample",
                                                                         "data_is_sample": True}}) \
        == "the embedded CIFAR-10 sample"
    assert parity_data_text({"config": {"data_source": "sample"}}) == "the embedded CIFAR-10 sample"
    assert parity_data_text({"config": {"data_source": "auto"}}) == \
        "CIFAR-10 (asked for as source 'auto'; this record does not say what that resolved to)"


def test_checkpoint_checks_are_read_shown_and_summed_up_from_what_se_res2net_test_printed(tmp_path):
    import json

    from se_res2net.audit import results

    def line(name, here_error, here_loss, same):
        return json.dumps({"checkpoint": f"book/runs/budget/checkpoints/{name}.pt", "epoch": 14,
                           "test_error": here_error, "test_loss": here_loss, "reproduces_record": same,
                           "evaluated_on": {"device_name": "AMD EPYC", "torch": "2.14"},
                           "record": {"test_error": 15.05, "test_loss": 0.4444, "evaluated_on": "NVIDIA H200"}})

    path = tmp_path / "checks.jsonl"
    assert results.load_checkpoint_checks(path) == []
    assert "No checkpoint has been checked" in results.checkpoint_checks_text([])
    path.write_text(line("a_seed1", 15.05, 0.4444 + 3e-8, True) + "\n" + line("b_seed1", 15.06, 0.4450, False) + "\n")
    rows = results.load_checkpoint_checks(path)
    df = results.checkpoint_checks_display(rows)
    assert df["run"].tolist() == ["a_seed1", "b_seed1"] and df["same error"].tolist() == ["yes", "NO"]
    assert df["checked on"].iloc[0] == "AMD EPYC (torch 2.14)" and df["recorded on"].iloc[0] == "NVIDIA H200"
    text = results.checkpoint_checks_text(rows)
    assert "**1 of 2**" in text and "on NVIDIA H200" in text and "on AMD EPYC" in text and "6.0e-04" in text
    path.write_text(json.dumps({"checkpoint": "x.pt", "test_error": 1.0}) + "\n")  # an older `test --json`
    with pytest.raises(ValueError, match="se-res2net test CHECKPOINT... --json"):
        results.load_checkpoint_checks(path)


def test_a_comparison_whose_sides_trained_on_different_hardware_says_so(tmp_path):
    """Budget seed 0 trains on this CPU in fp32, seeds 1-3 on a GPU in bf16: while one model's seed 0 is complete
    and the other's is not, the two sides' device mixes differ and the significance and ablation rows say so;
    once they match again (or for a run resumed from a CPU onto a GPU, on both sides) the note goes."""
    from se_res2net.audit.results import ablation_table, hardware_mix_note, training_device_kinds

    root = tmp_path / "runs"
    errs = {"res2net29": [7.1, 7.3, 7.2, 7.0], "se_res2net29": [6.9, 6.8, 7.0, 6.7]}
    for model, values in errs.items():
        for seed, err in enumerate(values):
            rec = record(model, seed, err)
            rec["provenance"]["device"] = "cpu" if seed == 0 else "cuda"
            if seed == 0 and model == "se_res2net29":
                continue  # not finished yet
            write(root, rec)
    df = load_records(root)
    assert sorted(df["device_kinds"]) == ["CPU"] + ["GPU"] * 6
    note = significance_table(df, [("res2net29", "se_res2net29")], n_resamples=200).iloc[0]["note"]
    assert "Res2Net-29: 1 on a CPU in fp32, 3 on a GPU in bf16; SE-Res2Net-29: 3 on a GPU in bf16" in note
    assert note == hardware_mix_note(df, "budget", "res2net29", "se_res2net29")
    abl = ablation_table(df, variants=[("se_res2net29", "SE on the fused output")], baseline="res2net29")
    assert "different hardware" in abl.set_index("model").at["se_res2net29", "note"]

    # the other seed 0 lands, resumed from the CPU onto a GPU: both sides hold one CPU-trained run and three GPU ones
    # by kind of start, but this one is "CPU + GPU", so the mixes still differ
    late = record("se_res2net29", 0, 6.9)
    late["provenance"]["device"] = "cpu"
    late["resumes"] = [{"epoch": 10, "device_name": "NVIDIA H200", "cuda": "13.0"}]
    assert training_device_kinds(late) == "CPU + GPU"
    write(root, late)
    df = load_records(root)
    assert "1 on a CPU and a GPU in fp32" in hardware_mix_note(df, "budget", "res2net29", "se_res2net29")
    # trained on the CPU alone, as its pair was: the same mix on both sides, and no note
    late["resumes"] = [{"epoch": 10, "device_name": "Intel Xeon", "cuda": None}, {"epoch": 31, "device": "cuda"}]
    assert training_device_kinds(late) == "CPU"  # a resume that trained no epoch does not count
    stopped_at_once = [{"epoch": 20, "device": "cuda"}, {"epoch": 20, "device_name": "Intel Xeon", "cuda": None}]
    assert training_device_kinds({**late, "resumes": late["resumes"][:1] + stopped_at_once}) == "CPU"  # nor here
    write(root, late)
    df = load_records(root)
    assert hardware_mix_note(df, "budget", "res2net29", "se_res2net29") == ""
    assert significance_table(df, [("res2net29", "se_res2net29")], n_resamples=200).iloc[0]["note"] == ""


def test_the_hardware_mix_is_said_in_prose_under_the_table_not_only_in_a_folded_note(tmp_path):
    from se_res2net.audit.results import hardware_mix_text

    root = tmp_path / "runs"
    for model, kinds in {"res2net29": ["cpu", "cuda"], "se_res2net29": ["cuda", "cuda"]}.items():
        for seed, kind in enumerate(kinds):
            rec = record(model, seed, 7.0 - seed * 0.1)
            rec["provenance"]["device"] = kind
            write(root, rec)
    df = load_records(root)
    pairs = [("res2net29", "se_res2net29"), ("resnet56", "se_resnet110")]
    text = hardware_mix_text(df, "budget", pairs)
    assert text.startswith("**The two sides trained on different hardware** in 1 comparison: Res2Net-29 → "
                           "SE-Res2Net-29 (Res2Net-29: 1 on a CPU in fp32, 1 on a GPU in bf16; SE-Res2Net-29: 2 on a "
                           "GPU in bf16)")
    assert hardware_mix_text(df, "budget", pairs[1:]) == ""


def test_the_same_device_at_another_precision_is_another_mix(tmp_path):
    """Stop 46 resumed GPU-started bf16 runs on a CPU with --bf16: a CPU can train in bf16 as well as in fp32, so
    two sides on the same kind of device but at different precisions are not the same mix."""
    from se_res2net.audit.results import hardware_mix_note, run_precision

    root = tmp_path / "runs"
    for model, bf16 in {"res2net29": [False, False], "se_res2net29": [False, True]}.items():
        for seed, flag in enumerate(bf16):
            rec = record(model, seed, 7.0 - seed * 0.1)
            rec["provenance"].update(device="cpu", bf16=flag)
            write(root, rec)
    df = load_records(root)
    assert sorted(df["precision"]) == ["bf16", "fp32", "fp32", "fp32"]
    assert ("(Res2Net-29: 2 on a CPU in fp32; SE-Res2Net-29: 1 on a CPU in bf16, 1 on a CPU in fp32)"
            in hardware_mix_note(df, "budget", "res2net29", "se_res2net29"))
    # a record from before bf16 was recorded trained at its device's default
    assert run_precision({"provenance": {"device": "cuda"}}) == "bf16"
    assert run_precision({"provenance": {"device": "cpu"}}) == "fp32"
    assert run_precision({"provenance": {"device": "cuda", "bf16": False}}) == "fp32"


def test_epoch_times_split_a_run_by_the_device_that_trained_each_epoch(tmp_path):
    from se_res2net.audit.results import TIME_COLUMNS, epoch_devices, epoch_times

    root = tmp_path / "runs"
    # seed 0: 4 epochs on the fake CPU at 10 s; a resume at epoch 4 that trained nothing (an Intel Xeon), then one
    # at 4 on an H200 that trained epochs 5-6 at 2 s (the last resume at an epoch wins)
    moved = record("res2net29", 0, None, status="running", n_epochs=6)
    moved["provenance"]["device"] = "cpu"
    for i, ep in enumerate(moved["epochs"]):
        ep["epoch_time_s"] = 10.0 if i < 4 else 2.0
    moved["resumes"] = [{"epoch": 4, "device_name": "Intel Xeon", "device": "cpu"},
                        {"epoch": 4, "device_name": "NVIDIA H200", "device": "cuda"}]
    write(root, moved)
    still = record("res2net29", 1, None, status="running", n_epochs=2)  # 2 epochs on the CPU at 30 s
    still["provenance"]["device"] = "cpu"
    for ep in still["epochs"]:
        ep["epoch_time_s"] = 30.0
    write(root, still)
    assert epoch_devices(moved) == [("Fake CPU", "CPU")] * 4 + [("NVIDIA H200", "GPU")] * 2
    t = epoch_times(root)
    assert list(t.columns) == TIME_COLUMNS
    rows = {r.device: r for r in t.itertuples()}
    assert set(rows) == {"Fake CPU (CPU)", "NVIDIA H200 (GPU)"} and set(t["profile"]) == {"budget"}
    cpu, gpu = rows["Fake CPU (CPU)"], rows["NVIDIA H200 (GPU)"]
    assert (cpu.runs, cpu.epochs_logged, gpu.runs, gpu.epochs_logged) == (2, 6, 1, 2)
    assert cpu.s_per_epoch == pytest.approx((4 * 10 + 2 * 30) / 6) and gpu.s_per_epoch == pytest.approx(2.0)
    assert gpu.run_min == pytest.approx(30 * 2.0 / 60)  # the budget profile's 30 epochs at the H200's pace
    assert cpu.measured_h == pytest.approx(100 / 3600)
    assert cpu.models == gpu.models == "res2net29"
    # no record says when it ran: each epoch counts alone on the device, as if nothing ran beside it
    assert cpu.device_s_per_epoch == pytest.approx(cpu.s_per_epoch) and gpu.device_s_per_epoch == pytest.approx(2.0)
    assert epoch_times(tmp_path / "none").empty


def test_the_device_pace_counts_runs_that_shared_the_device_once(tmp_path):
    from se_res2net.audit.results import epoch_log, epoch_times

    root = tmp_path / "runs"
    # three runs of 4 epochs of 10 s on one GPU: two side by side from 10:00:00, the third from 10:00:40
    for model, seed, start in (("res2net29", 0, "10:00:00"), ("se_res2net29", 0, "10:00:00"), ("res2net29", 1, "10:00:40")):
        rec = record(model, seed, None, status="running", n_epochs=4)
        rec["provenance"]["start_time"] = f"2026-12-04T{start}Z"
        for ep in rec["epochs"]:
            ep["epoch_time_s"] = 10.0
        write(root, rec)
    log = epoch_log(root)
    assert sorted(log["start"] - log["start"].min())[-1] == 70.0  # the third run's last epoch begins 70 s in
    (row,) = epoch_times(root).itertuples()
    assert row.models == "res2net29, se_res2net29" and row.epochs_logged == 12 and row.s_per_epoch == 10.0
    assert row.device_s_per_epoch == pytest.approx(80 / 12)  # the device ran from 10:00:00 to 10:01:20


def test_seed_sd_sources_pools_the_report_the_literature_and_ours():
    from types import SimpleNamespace as E

    report = {"sd_a": 0.05, "n_a": 3, "sd_b": 0.04, "n_b": 3}
    # (entries as load_literature gives them: a source's BibTeX key and its author–year label, which is printed)
    entries = [E(sd=0.16, source="he2016resnet", cite="He et al., 2016a", model="ResNet-110", runs=5),
               E(sd=0.16, source="he2016resnet", cite="He et al., 2016a", model="ResNet-110", runs=5),  # listed twice
               E(sd=None, source="x", cite="X, 2020", model="no spread", runs=None),
               E(sd=0.149, source="jordan2024variance", cite="Jordan, 2024", model="ResNet-9", runs=60000)]
    df = _table_records()
    smoke = df.assign(profile="smoke", final_test_error=df["final_test_error"] * 20)  # a plumbing check's spread
    sds = R.seed_sd_sources(report, entries, pd.concat([df, smoke], ignore_index=True))
    pooled = math.sqrt((2 * 0.05**2 + 2 * 0.04**2) / 4)
    assert list(sds.values()) == sorted(sds.values()) and len(sds) == 4  # smallest first; smoke left out
    (rep,) = [v for k, v in sds.items() if k.startswith("the report's")]
    (ours,) = [v for k, v in sds.items() if k.startswith("ours, profile budget (n = 3 + 3")]
    assert rep == pytest.approx(pooled)
    assert ours == pytest.approx(math.sqrt((np.var([3.40, 3.45, 3.50], ddof=1) + np.var([2.94, 2.98, 3.02], ddof=1)) / 2))
    assert sds["ResNet-9, 60,000 runs (Jordan, 2024)"] == 0.149
    one_seed = R.seed_sd_sources(report, [], df[df.seed == 0])  # n = 1 + 1 has no σ of ours
    assert list(one_seed) == [next(iter(one_seed))] and next(iter(one_seed)).startswith("the report's")


def test_plot_detectable_difference_draws_a_line_per_seed_count_and_numbers_each_sigma():
    from se_res2net.audit.stats import detectable_difference

    sds = {"small": 0.05, "published": 0.16}
    fig = R.plot_detectable_difference(sds, 0.47, ns=(3, 5))
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    assert len(lines) == 2
    x, y = lines[0].get_xdata(), lines[0].get_ydata()
    assert y[-1] == pytest.approx(detectable_difference(x[-1], 3, 3))
    assert [t.get_text() for t in ax.texts] == ["1", "2"]
    assert ax.texts[1].xy == pytest.approx((0.16, detectable_difference(0.16, 3, 3)))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["3 + 3 seeds", "5 + 5 seeds", "the report's Δ = 0.47 pp", "σ: small", "σ: published"]
    with pytest.raises(ValueError, match="no seed-to-seed SD"):
        R.plot_detectable_difference({}, 0.47)


def test_power_at_published_sds_says_the_range_and_when_the_test_is_weak():
    from types import SimpleNamespace as E

    from se_res2net.audit.stats import seeds_needed, t_test_power

    report = {"mean_a": 3.45, "mean_b": 2.98}
    entries = [E(sd=0.14, source="a", cite="A, 2001", model="A", runs=5), E(sd=0.20, source="b", cite="B, 2002", model="B", runs=5),
               E(sd=None, source="c", cite="C, 2003", model="C", runs=None)]
    said = R.power_at_published_sds(report, entries)
    diff = 3.45 - 2.98
    assert "(0.14–0.20 pp)" in said and "Δ = 0.47 pp" in said
    assert f"power of {t_test_power(diff, 0.20, 3, 3):.2f}–{t_test_power(diff, 0.14, 3, 3):.2f}" in said
    assert f"takes {seeds_needed(diff, 0.14)}–{seeds_needed(diff, 0.20)} seeds per model" in said
    assert "weak evidence" in said  # at σ = 0.20 three seeds have less than 80 % power
    assert "weak evidence" not in R.power_at_published_sds(report, entries[:1] + [E(sd=0.05, source="d", cite="D, 2004", model="D", runs=3)])
    assert R.power_at_published_sds(report, entries[2:]) == ""
