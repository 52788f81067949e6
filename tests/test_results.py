"""Run records -> tables, against hand computation on fake records written here."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats as sps  # noqa: E402

from se_res2net.results import (  # noqa: E402
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
)
from se_res2net.stats import efficiency_table  # noqa: E402

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
    assert plot_curves(cur.iloc[0:0]) is not None
    with pytest.raises(ValueError):
        plot_curves(cur, metric="accuracy")
    plt.close("all")


def test_tables_accept_frames_built_by_hand():
    df = pd.DataFrame({"profile": ["p"] * 4, "model": ["res2net29"] * 2 + ["se_res2net29"] * 2,
                       "seed": [0, 1, 0, 1], "status": ["complete"] * 4,
                       "final_test_error": [3.4, 3.5, 3.0, 3.1], "params": [1e6] * 4, "macs": [2e6] * 4})
    t = results_table(df).set_index("model")
    assert t.at["res2net29", "mean_error"] == pytest.approx(3.45) and t.at["res2net29", "flops_m"] == 4.0
