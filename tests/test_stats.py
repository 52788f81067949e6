"""Statistics against hand formulas and textbook values."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from se_res2net.audit.stats import (
    bootstrap_diff_ci,
    cohens_d,
    compare,
    d_required_for_p,
    efficiency_table,
    from_reported,
    p_implied_by_d,
    pooled_sd,
    report_consistency,
    student_t,
    summarize,
    welch_t,
)

A = [3.41, 3.45, 3.52]  # baseline errors (%)
B = [2.95, 2.99, 3.01, 2.97]  # candidate errors (%), unequal n on purpose

# The report's own summary (inputs to the functions, not part of the library).
REPORT = dict(mean_a=3.45, sd_a=0.05, n_a=3, mean_b=2.98, sd_b=0.04, n_b=3, p=0.005, d=1.3, diff=0.47)


def _hand(a, b):
    a, b = np.asarray(a), np.asarray(b)
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(ddof=1), b.var(ddof=1)
    na, nb = len(a), len(b)
    se_w = math.sqrt(va / na + vb / nb)
    t_w = (ma - mb) / se_w
    df_w = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    sp = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    t_s = (ma - mb) / (sp * math.sqrt(1 / na + 1 / nb))
    return dict(t_w=t_w, df_w=df_w, p_w=2 * sps.t.sf(abs(t_w), df_w), t_s=t_s, df_s=na + nb - 2,
                p_s=2 * sps.t.sf(abs(t_s), na + nb - 2), d=(ma - mb) / sp, diff=ma - mb)


def test_summarize():
    s = summarize(A)
    assert s.n == 3
    assert s.mean == pytest.approx(sum(A) / 3)
    assert s.std == pytest.approx(math.sqrt(sum((x - s.mean) ** 2 for x in A) / 2))
    one = summarize([3.0])
    assert one.n == 1 and one.mean == 3.0 and math.isnan(one.std)
    empty = summarize([])
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.std)
    assert "±" in str(s)
    with pytest.raises(ValueError, match="NaN"):
        summarize([1.0, float("nan")])


def test_welch_and_student_by_formula():
    h = _hand(A, B)
    w = welch_t(A, B)
    assert w.method == "welch" and w.reason is None
    assert w.t == pytest.approx(h["t_w"]) and w.df == pytest.approx(h["df_w"]) and w.p == pytest.approx(h["p_w"])
    s = student_t(A, B)
    assert s.t == pytest.approx(h["t_s"]) and s.df == h["df_s"] and s.p == pytest.approx(h["p_s"])
    assert w.t > 0  # baseline a has the larger error
    assert welch_t(B, A).t == pytest.approx(-w.t)


def test_cohens_d_by_formula_and_sign():
    h = _hand(A, B)
    assert cohens_d(A, B) == pytest.approx(h["d"])
    assert cohens_d(A, B) > 0 and cohens_d(B, A) == pytest.approx(-h["d"])
    # textbook: two groups 1 SD apart with equal SDs -> d = 1
    assert cohens_d([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]) == pytest.approx(1.0)


def test_pooled_sd_is_the_within_group_root_mean_square():
    # independent of the formula: the residuals about each group's mean, over n_a + n_b - 2 degrees of freedom
    resid = np.concatenate([np.asarray(A) - np.mean(A), np.asarray(B) - np.mean(B)])
    within = math.sqrt(float(resid @ resid) / (len(A) + len(B) - 2))
    assert pooled_sd(np.std(A, ddof=1), len(A), np.std(B, ddof=1), len(B)) == pytest.approx(within, rel=1e-12)
    # and Student's t is the mean difference over s_p * sqrt(1/n_a + 1/n_b)
    sp = pooled_sd(np.std(A, ddof=1), len(A), np.std(B, ddof=1), len(B))
    t = (np.mean(A) - np.mean(B)) / (sp * math.sqrt(1 / len(A) + 1 / len(B)))
    assert t == pytest.approx(sps.ttest_ind(A, B, equal_var=True).statistic, rel=1e-12)
    # a group of one adds neither a square nor a degree of freedom; two groups of one leave no degree of freedom
    assert pooled_sd(5.0, 1, 2.0, 2) == pytest.approx(2.0)
    for na, nb in ((1, 1), (0, 3)):
        with pytest.raises(ValueError, match="pooled SD needs"):
            pooled_sd(1.0, na, 1.0, nb)


def test_small_samples_give_nan_with_reason():
    for fn in (welch_t, student_t):
        r = fn([3.0], [2.9, 3.1])
        assert math.isnan(r.t) and math.isnan(r.p) and "at least 2" in r.reason
    assert math.isnan(cohens_d([3.0], [2.9, 3.1]))
    ci = bootstrap_diff_ci([3.0], [2.9, 3.1])
    assert math.isnan(ci.low) and math.isnan(ci.high) and ci.reason
    c = compare([3.0], [2.9, 3.1], names=("base", "cand"))
    assert c.diff == pytest.approx(0.0) and math.isnan(c.welch.p) and math.isnan(c.d)
    row = c.as_row()
    assert row["baseline"] == "base" and "at least 2" in row["note"]


def test_zero_variance_is_nan_not_crash():
    c = compare([3.0, 3.0], [2.0, 2.0])
    assert math.isnan(c.welch.t) and math.isnan(c.d) and "zero" in c.d_reason
    assert c.ci.method == "percentile" and c.ci.low == pytest.approx(1.0) and "fell back" in c.ci.reason


def test_bootstrap_contains_true_diff_and_is_reproducible():
    rng = np.random.default_rng(123)
    a = rng.normal(3.5, 0.1, 40)
    b = rng.normal(3.0, 0.1, 40)
    ci = bootstrap_diff_ci(a, b, n_resamples=2000, seed=7)
    assert ci.method == "BCa" and ci.reason is None
    assert ci.low < 0.5 < ci.high
    assert ci.low < a.mean() - b.mean() < ci.high
    assert ci == bootstrap_diff_ci(a, b, n_resamples=2000, seed=7)
    assert bootstrap_diff_ci(a, b, n_resamples=2000, seed=8) != ci
    # wider at higher confidence
    ci99 = bootstrap_diff_ci(a, b, confidence=0.99, n_resamples=2000, seed=7)
    assert ci99.high - ci99.low > ci.high - ci.low
    pc = bootstrap_diff_ci(a, b, n_resamples=2000, seed=7, method="percentile")
    assert pc.method == "percentile" and pc.low < 0.5 < pc.high
    with pytest.raises(ValueError):
        bootstrap_diff_ci(a, b, confidence=95)


def test_bootstrap_n3_is_bounded_by_resample_extremes():
    a, b = [3.40, 3.45, 3.50], [2.94, 2.98, 3.02]
    ci = bootstrap_diff_ci(a, b, n_resamples=2000, seed=0)
    # every resampled mean difference lies in [min(a)-max(b), max(a)-min(b)]
    assert min(a) - max(b) <= ci.low <= 0.47 <= ci.high <= max(a) - min(b)


def test_compare_fields_and_row():
    h = _hand(A, B)
    c = compare(A, B, names=("res2net29", "se_res2net29"), n_resamples=1000)
    assert c.diff == pytest.approx(h["diff"])
    assert c.welch.p == pytest.approx(h["p_w"]) and c.student.p == pytest.approx(h["p_s"])
    assert c.d == pytest.approx(h["d"])
    row = c.as_row()
    assert row["candidate"] == "se_res2net29" and row["n_baseline"] == 3 and row["n_candidate"] == 4
    assert row["welch_df"] == pytest.approx(h["df_w"]) and row["note"] == ""
    assert row["ci_low"] < row["diff"] < row["ci_high"]
    with pytest.raises(Exception):
        c.diff = 0  # frozen


def test_from_reported_matches_raw_data_and_formula():
    # Summary statistics of A and B must imply the same tests as the raw data.
    sa, sb = summarize(A), summarize(B)
    r = from_reported(sa.mean, sa.std, sa.n, sb.mean, sb.std, sb.n)
    h = _hand(A, B)
    assert r.welch.t == pytest.approx(h["t_w"]) and r.welch.df == pytest.approx(h["df_w"])
    assert r.welch.p == pytest.approx(h["p_w"]) and r.student.p == pytest.approx(h["p_s"])
    assert r.d == pytest.approx(h["d"])
    with pytest.raises(ValueError):
        from_reported(1, 0.1, 1, 2, 0.1, 3)


def test_report_numbers_by_hand():
    r = from_reported(3.45, 0.05, 3, 2.98, 0.04, 3)
    t = 0.47 / math.sqrt(0.05**2 / 3 + 0.04**2 / 3)
    assert r.welch.t == pytest.approx(t) == pytest.approx(12.7135, abs=1e-3)
    assert r.student.p == pytest.approx(2 * sps.t.sf(t, 4))
    assert r.d == pytest.approx(0.47 / math.sqrt((0.05**2 + 0.04**2) / 2)) == pytest.approx(10.38, abs=0.01)
    assert r.welch.p < 0.001 and r.student.p < 0.001


def test_d_p_conversions_textbook():
    # t_{0.975, 4} = 2.776 (t table); n=3,3 -> d = t / sqrt(1.5)
    assert d_required_for_p(0.05, 3, 3) == pytest.approx(2.7764 / math.sqrt(1.5), abs=1e-3)
    assert p_implied_by_d(d_required_for_p(0.005, 3, 3), 3, 3) == pytest.approx(0.005)
    assert p_implied_by_d(1.3, 3, 3) == pytest.approx(2 * sps.t.sf(1.3 * math.sqrt(1.5), 4))
    assert p_implied_by_d(-1.3, 3, 3) == p_implied_by_d(1.3, 3, 3)
    assert p_implied_by_d(0.0, 5, 7) == pytest.approx(1.0)


def test_report_consistency_flags_the_report():
    rep = report_consistency(REPORT)
    by = {c.quantity: c for c in rep.checks}
    assert by["diff"].consistent
    assert not by["p"].consistent and by["p"].implied_high < 0.001
    assert not by["d"].consistent and by["d"].implied_low > 9
    assert not by["p_vs_d"].consistent
    assert not rep.consistent
    assert rep.d_for_claimed_p == pytest.approx(4.57, abs=0.01)
    assert rep.p_for_claimed_d == pytest.approx(0.187, abs=0.001)
    assert len(rep.as_rows()) == 4


def test_report_consistency_accepts_a_consistent_report():
    a, b = [3.40, 3.50, 3.45], [3.30, 3.38, 3.36]
    sa, sb = summarize(a), summarize(b)
    c = compare(a, b, n_resamples=100)
    claims = dict(mean_a=round(sa.mean, 2), sd_a=round(sa.std, 2), n_a=3, mean_b=round(sb.mean, 2),
                  sd_b=round(sb.std, 2), n_b=3, p=float(f"{c.student.p:.2g}"), d=round(c.d, 1), diff=round(c.diff, 2))
    rep = report_consistency(claims)
    assert rep.consistent, rep.as_rows()
    # keyword overrides and missing keys
    assert not report_consistency(claims, d=9.9).consistent
    with pytest.raises(ValueError, match="mean_b"):
        report_consistency({"mean_a": 1, "sd_a": 0.1, "n_a": 3})


def test_efficiency_table_reproduces_report():
    rows = [
        dict(variant="se_resnet110", baseline="resnet56", params_variant=1.71, params_baseline=0.86,
             error_variant=4.75, error_baseline=5.82),
        dict(variant="se_res2net29", baseline="res2net29", params_variant=0.65, params_baseline=0.63,
             error_variant=2.98, error_baseline=3.45, params_resolution=0.005),
        dict(variant="worse", baseline="res2net29", params_variant=0.70, params_baseline=0.63,
             error_variant=3.50, error_baseline=3.45),
    ]
    t = efficiency_table(rows).set_index("variant")
    assert t.at["se_resnet110", "delta_params_m"] == pytest.approx(0.85)
    assert t.at["se_resnet110", "delta_error_pct"] == pytest.approx(-1.07)
    assert round(t.at["se_resnet110", "params_per_1pct_drop_m"], 2) == 0.79
    assert t.at["se_res2net29", "delta_params_m"] == pytest.approx(0.02)
    assert t.at["se_res2net29", "delta_error_pct"] == pytest.approx(-0.47)
    assert round(t.at["se_res2net29", "params_per_1pct_drop_m"], 2) == 0.04
    assert t.at["se_res2net29", "ratio_low"] == pytest.approx(0.01 / 0.47)
    assert t.at["se_res2net29", "ratio_high"] == pytest.approx(0.03 / 0.47)
    assert math.isnan(t.at["worse", "params_per_1pct_drop_m"]) and "did not drop" in t.at["worse", "note"]
    with pytest.raises(ValueError, match="lacks"):
        efficiency_table([dict(variant="x")])


def test_import_is_light():
    code = ("import sys, se_res2net.audit.stats, se_res2net.audit.results; "
            "bad = [m for m in ('torch', 'scipy', 'pandas', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_welch_interval_is_the_difference_plus_minus_t_times_its_standard_error():
    from se_res2net.audit.stats import CI_LEVEL

    h = _hand(A, B)
    c = compare(A, B, n_resamples=100)
    va, vb = np.var(A, ddof=1) / len(A), np.var(B, ddof=1) / len(B)
    half = sps.t.ppf(0.5 + CI_LEVEL / 2, h["df_w"]) * math.sqrt(va + vb)
    assert (c.welch.ci_low, c.welch.ci_high) == pytest.approx((h["diff"] - half, h["diff"] + half))
    row = c.as_row()
    assert (row["welch_ci_low"], row["welch_ci_high"]) == pytest.approx((h["diff"] - half, h["diff"] + half))
    # the Student interval uses the pooled SD and n_a + n_b - 2 degrees of freedom
    sp = math.sqrt(((len(A) - 1) * np.var(A, ddof=1) + (len(B) - 1) * np.var(B, ddof=1)) / (len(A) + len(B) - 2))
    half_s = sps.t.ppf(0.5 + CI_LEVEL / 2, len(A) + len(B) - 2) * sp * math.sqrt(1 / len(A) + 1 / len(B))
    assert c.student.ci_high - c.student.ci_low == pytest.approx(2 * half_s)
    assert math.isnan(compare([1.0], B, n_resamples=10).welch.ci_low)


@pytest.mark.parametrize("x, text", [(0.00029, "0.00029"), (0.000129, "0.00013"), (0.8123, "0.81"), (10.38, "10"),
                                     (-0.3333, "-0.33"), (0.0052, "0.0052"), (1.3, "1.3"),
                                     (0.8037, "0.80")])
def test_format_sig_prints_two_significant_digits_without_exponents(x, text):
    from se_res2net.audit.stats import format_sig

    assert format_sig(x) == text


def test_format_p():
    from se_res2net.audit.stats import format_p, format_sig

    assert format_p(0.0052) == "0.0052" and format_p(0.18) == "0.18" and format_p(0.180000) == "0.18"
    assert format_p(3e-7) == "< 0.0001"
    assert format_p(float("nan")) == "—" and format_p(None) == "—" and format_sig(True) == "—"


def test_consistency_display_reads_like_the_report():
    from se_res2net.audit.stats import consistency_display

    t = consistency_display(report_consistency(REPORT)).set_index("quantity")
    assert list(t.columns) == ["claimed (rounding range)", "implied (rounding range)", "consistent", "how"]
    assert t.at["p (two-sided)", "claimed (rounding range)"] == "0.005 (0.0045–0.0055)"
    assert t.at["p (two-sided)", "implied (rounding range)"].startswith("0.00029 (")
    assert t.at["Cohen's d", "implied (rounding range)"].startswith("10 (")
    assert t.at["Cohen's d", "claimed (rounding range)"] == "1.3 (1.25–1.35)"
    assert t.at["Δ = mean a − mean b (pp)", "claimed (rounding range)"] == "0.47 (0.465–0.475)"
    assert t["consistent"].tolist() == ["yes", "no", "no", "no"]
    assert t.at["p (two-sided)", "how"].startswith("<details><summary>how</summary>two-sided")


# --------------------------------------------------------------------------- power


@pytest.mark.parametrize("diff, sd, n", [(0.47, 0.16, 3), (0.3, 0.2, 5), (0.2, 0.16, 3)])
def test_t_test_power_matches_simulated_experiments(diff, sd, n):
    """The noncentral-t power against the rejection rate of scipy's own t test over simulated experiments."""
    from scipy import stats as sps

    from se_res2net.audit.stats import t_test_power

    rng = np.random.default_rng(7)
    trials = 40_000
    a = rng.normal(3.0 + diff, sd, size=(trials, n))
    b = rng.normal(3.0, sd, size=(trials, n))
    rate = float(np.mean(sps.ttest_ind(a, b, axis=1).pvalue < 0.05))
    power = t_test_power(diff, sd, n, n)
    assert abs(rate - power) < 4 * math.sqrt(power * (1 - power) / trials), (rate, power)


def test_detectable_difference_and_seeds_needed_invert_the_power():
    from se_res2net.audit.stats import detectable_difference, power_table, seeds_needed, t_test_power

    assert t_test_power(0.0, 0.16, 3, 3) == pytest.approx(0.05)  # no difference: the test's level
    assert t_test_power(-0.47, 0.16, 3, 3) == pytest.approx(t_test_power(0.47, 0.16, 3, 3))  # two-sided
    d = detectable_difference(0.16, 3, 3)
    assert t_test_power(d, 0.16, 3, 3) == pytest.approx(0.8, abs=1e-6)
    assert detectable_difference(0.16, 10, 10) < d < detectable_difference(0.32, 3, 3)
    n = seeds_needed(0.47, 0.16)
    assert t_test_power(0.47, 0.16, n, n) >= 0.8 > t_test_power(0.47, 0.16, n - 1, n - 1)
    t = power_table(0.47, {"a": 0.16, "b": 0.04}).set_index("σ from")
    assert t.at["a", "seeds needed"] == n and t.at["b", "power"] > t.at["a", "power"]
    with pytest.raises(ValueError, match="sd must be > 0"):
        t_test_power(0.47, 0.0, 3, 3)
    with pytest.raises(ValueError, match="power must be in"):
        detectable_difference(0.16, 3, 3, power=0.01)
