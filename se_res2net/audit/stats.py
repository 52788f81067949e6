"""Statistics for comparing runs: mean ± σ, Welch/Student t, Cohen's d, bootstrap CI.

scipy does the arithmetic (``ttest_ind``, ``ttest_ind_from_stats``, ``bootstrap``,
``t``); this module only fixes the conventions and makes small samples safe.

Conventions
-----------
* Values are test errors in **percent**; lower is better.
* Every two-sample function takes ``(a, b)`` = ``(baseline, candidate)``. Differences
  are ``mean(a) - mean(b)``, so a **positive** difference, t or Cohen's d means the
  candidate ``b`` has the *lower* error (it improves on the baseline).
* ``std`` is the sample standard deviation (``ddof=1``); it is NaN when ``n < 2``.
* Anything that needs a variance (t tests, d, bootstrap) returns NaN together with a
  ``reason`` string when a group has fewer than two values, instead of raising.

The report's own numbers (Res2Net-29 3.45±0.05 vs SE-Res2Net-29 2.98±0.04, n=3 each,
"p=0.005, Cohen's d=1.3") are never hard-coded here: :func:`from_reported` and
:func:`report_consistency` take them as arguments, so the claims ledger passes them in.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Tuple

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "Summary",
    "TTest",
    "BootstrapCI",
    "Comparison",
    "ReportedComparison",
    "ConsistencyCheck",
    "ConsistencyReport",
    "summarize",
    "welch_t",
    "student_t",
    "cohens_d",
    "pooled_sd",
    "bootstrap_diff_ci",
    "compare",
    "from_reported",
    "d_required_for_p",
    "p_implied_by_d",
    "report_consistency",
    "t_test_power",
    "detectable_difference",
    "seeds_needed",
    "power_table",
    "efficiency_table",
    "format_p",
    "format_sig",
    "consistency_display",
]

NAN = float("nan")
#: Confidence level of the t intervals that come with every t test (the bootstrap's is an argument).
CI_LEVEL = 0.95


def _as_array(values: Iterable[float], what: str = "values") -> np.ndarray:
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float).ravel()
    if np.isnan(arr).any():
        raise ValueError(f"{what} contain NaN; drop failed or missing runs before computing statistics")
    return arr


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1; NaN when ``n < 2``) and count."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        if self.n == 0:
            return "n/a (n=0)"
        sd = "n/a" if math.isnan(self.std) else f"{self.std:.2f}"
        return f"{self.mean:.2f} ± {sd} (n={self.n})"


def summarize(values: Iterable[float]) -> Summary:
    """Summarise a sample; an empty sample gives NaN mean and std with ``n=0``."""
    arr = _as_array(values)
    n = int(arr.size)
    mean = float(np.mean(arr)) if n else NAN
    std = float(np.std(arr, ddof=1)) if n >= 2 else NAN
    return Summary(mean=mean, std=std, n=n)


# --------------------------------------------------------------------------- t tests


@dataclass(frozen=True)
class TTest:
    """Two-sided two-sample t test. ``t > 0`` when ``mean(a) > mean(b)``.

    ``ci_low``/``ci_high``: the 95 % confidence interval of ``mean(a) - mean(b)`` that goes with the test
    (scipy's ``TtestResult.confidence_interval``); NaN when the test is undefined or computed from summaries.
    """

    t: float
    p: float
    df: float
    method: str  # "welch" or "student"
    reason: str | None = None  # why the values are NaN, if they are
    ci_low: float = NAN
    ci_high: float = NAN


def _too_small(na: int, nb: int) -> str | None:
    if na < 2 or nb < 2:
        return f"needs at least 2 values per group (got n_a={na}, n_b={nb})"
    return None


def welch_df(sa: float, na: int, sb: float, nb: int) -> float:
    """Welch–Satterthwaite degrees of freedom from standard deviations and counts."""
    # by hand only for summaries: scipy's ttest_ind_from_stats returns no df (ttest_ind's res.df is used on samples)
    va, vb = sa**2 / na, sb**2 / nb
    den = va**2 / (na - 1) + vb**2 / (nb - 1)
    return (va + vb) ** 2 / den if den > 0 else NAN


def _ttest(a: Iterable[float], b: Iterable[float], equal_var: bool) -> TTest:
    from scipy import stats as sps

    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    method = "student" if equal_var else "welch"
    reason = _too_small(xa.size, xb.size)
    if reason:
        return TTest(NAN, NAN, NAN, method, reason)
    if np.std(xa, ddof=1) == 0 and np.std(xb, ddof=1) == 0:
        return TTest(NAN, NAN, NAN, method, "both groups have zero variance; t is undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.ttest_ind(xa, xb, equal_var=equal_var)
        ci = res.confidence_interval(CI_LEVEL)
    return TTest(float(res.statistic), float(res.pvalue), float(res.df), method, ci_low=float(ci.low), ci_high=float(ci.high))


def welch_t(a: Iterable[float], b: Iterable[float]) -> TTest:
    """Welch's unequal-variance t test (``scipy.stats.ttest_ind(equal_var=False)``)."""
    return _ttest(a, b, equal_var=False)


def student_t(a: Iterable[float], b: Iterable[float]) -> TTest:
    """Student's pooled-variance t test (``scipy.stats.ttest_ind(equal_var=True)``), df = n_a + n_b - 2."""
    return _ttest(a, b, equal_var=True)


# --------------------------------------------------------------------------- effect size


# by hand: scipy has no Cohen's d (nor a pooled SD on its own)
def pooled_sd(sa: float, na: int, sb: float, nb: int) -> float:
    """The pooled standard deviation of two groups from their sample SDs ``sa``, ``sb`` (ddof = 1) and sizes:
    ``sqrt(((na-1) sa² + (nb-1) sb²) / (na + nb - 2))``, the ``s_p`` of Student's t and of Cohen's d.

    Raises ``ValueError`` when ``na + nb < 3`` (no degree of freedom left) or a size is below 1."""
    if na < 1 or nb < 1 or na + nb < 3:
        raise ValueError(f"a pooled SD needs n_a, n_b >= 1 and n_a + n_b >= 3; got {na} and {nb}")
    return math.sqrt(((na - 1) * sa**2 + (nb - 1) * sb**2) / (na + nb - 2))


def _d_from_stats(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int) -> Tuple[float, str | None]:
    reason = _too_small(n_a, n_b)
    if reason:
        return NAN, reason
    sp = pooled_sd(sd_a, n_a, sd_b, n_b)
    if sp == 0:
        return NAN, "pooled standard deviation is zero; Cohen's d is undefined"
    return (mean_a - mean_b) / sp, None


def cohens_d(a: Iterable[float], b: Iterable[float]) -> float:
    """Cohen's d with the pooled SD: ``(mean(a) - mean(b)) / s_p``.

    ``s_p = sqrt(((n_a-1) s_a² + (n_b-1) s_b²) / (n_a + n_b - 2))``. Positive when ``a``
    has the larger mean, i.e. (baseline a, candidate b) → positive d = candidate has lower
    error. No small-sample (Hedges) correction. NaN when a group has fewer than two values
    or the pooled SD is zero.
    """
    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    if xa.size < 2 or xb.size < 2:
        return NAN
    d, _ = _d_from_stats(float(xa.mean()), float(np.std(xa, ddof=1)), xa.size,
                         float(xb.mean()), float(np.std(xb, ddof=1)), xb.size)
    return d


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapCI:
    """Bootstrap confidence interval of ``mean(a) - mean(b)`` (independent resampling per group)."""

    low: float
    high: float
    confidence: float
    method: str  # "BCa" or "percentile" (the one actually used)
    n_resamples: int
    seed: int
    reason: str | None = None  # fallback note or why it is NaN


def bootstrap_diff_ci(
    a: Iterable[float],
    b: Iterable[float],
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
    method: str = "BCa",
) -> BootstrapCI:
    """CI of ``mean(a) - mean(b)`` via ``scipy.stats.bootstrap`` (``paired=False``).

    BCa is tried first; when it fails or gives a NaN bound (tiny or degenerate samples,
    e.g. zero variance) the percentile interval is returned and ``reason`` says so.
    Deterministic for a given ``seed``. With n=3 per group there are only 10 distinct
    resamples per group, so the interval is coarse and tends to be too narrow: treat it
    as descriptive, not as a test. Needs at least two values per group (NaN otherwise).
    """
    from scipy import stats as sps

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}; e.g. 0.95")
    if method not in ("BCa", "percentile"):
        raise ValueError(f"method must be 'BCa' or 'percentile', got {method!r}")
    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    reason = _too_small(xa.size, xb.size)
    if reason:
        return BootstrapCI(NAN, NAN, confidence, method, n_resamples, seed, reason)

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    def run(m: str) -> Tuple[float, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.bootstrap(
                (xa, xb), stat, n_resamples=n_resamples, vectorized=True, paired=False,
                confidence_level=confidence, method=m, rng=np.random.default_rng(seed),
            )
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    note = None
    used = method
    try:
        low, high = run(method)
        ok = not (math.isnan(low) or math.isnan(high))
        if not ok:
            note = f"{method} gave a NaN bound (degenerate sample); fell back to percentile"
    except Exception as exc:  # scipy raises several types for degenerate data
        ok = False
        note = f"{method} failed ({type(exc).__name__}: {exc}); fell back to percentile"
    if not ok and method != "percentile":
        used = "percentile"
        low, high = run("percentile")
    return BootstrapCI(low, high, confidence, used, n_resamples, seed, note)


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    """Everything about ``baseline a`` vs ``candidate b``; ``diff = mean(a) - mean(b)``."""

    name_a: str
    name_b: str
    a: Summary
    b: Summary
    diff: float
    welch: TTest
    student: TTest
    d: float
    d_reason: str | None
    ci: BootstrapCI

    def as_row(self) -> dict:
        """Flat dict for a table row."""
        return {
            "baseline": self.name_a,
            "candidate": self.name_b,
            "n_baseline": self.a.n,
            "mean_baseline": self.a.mean,
            "std_baseline": self.a.std,
            "n_candidate": self.b.n,
            "mean_candidate": self.b.mean,
            "std_candidate": self.b.std,
            "diff": self.diff,
            "welch_t": self.welch.t,
            "welch_df": self.welch.df,
            "welch_p": self.welch.p,
            "welch_ci_low": self.welch.ci_low,
            "welch_ci_high": self.welch.ci_high,
            "student_t": self.student.t,
            "student_df": self.student.df,
            "student_p": self.student.p,
            "cohens_d": self.d,
            "ci_low": self.ci.low,
            "ci_high": self.ci.high,
            "ci_method": self.ci.method,
            "note": "; ".join(dict.fromkeys(r for r in (self.welch.reason, self.d_reason, self.ci.reason) if r)) or "",
        }


def compare(
    a: Iterable[float],
    b: Iterable[float],
    names: Tuple[str, str] = ("a", "b"),
    confidence: float = CI_LEVEL,
    n_resamples: int = 10000,
    seed: int = 0,
) -> Comparison:
    """Compare baseline ``a`` with candidate ``b`` (positive diff/t/d = ``b`` has lower error)."""
    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    sa, sb = summarize(xa), summarize(xb)
    diff = sa.mean - sb.mean if sa.n and sb.n else NAN
    if sa.n >= 2 and sb.n >= 2:
        d, d_reason = _d_from_stats(sa.mean, sa.std, sa.n, sb.mean, sb.std, sb.n)
    else:
        d, d_reason = NAN, _too_small(sa.n, sb.n)
    return Comparison(
        name_a=str(names[0]), name_b=str(names[1]), a=sa, b=sb, diff=diff,
        welch=welch_t(xa, xb), student=student_t(xa, xb), d=d, d_reason=d_reason,
        ci=bootstrap_diff_ci(xa, xb, confidence=confidence, n_resamples=n_resamples, seed=seed),
    )


# --------------------------------------------------------------------------- from summary statistics


@dataclass(frozen=True)
class ReportedComparison:
    """What published summary statistics imply (baseline a vs candidate b)."""

    diff: float
    welch: TTest
    student: TTest
    d: float


def _check_n(n: Any, what: str) -> int:
    if int(n) != n or n < 2:
        raise ValueError(f"{what} must be an integer >= 2 to imply a test statistic, got {n!r}")
    return int(n)


def from_reported(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int) -> ReportedComparison:
    """t, two-sided p (Welch and Student, ``scipy.stats.ttest_ind_from_stats``) and Cohen's d implied by summaries.

    ``sd_*`` are sample standard deviations (ddof=1), as a "±σ" column is read.
    """
    from scipy import stats as sps

    n_a, n_b = _check_n(n_a, "n_a"), _check_n(n_b, "n_b")
    if sd_a < 0 or sd_b < 0:
        raise ValueError("standard deviations must be >= 0")
    out = {}
    for equal_var, name in ((False, "welch"), (True, "student")):
        if sd_a == 0 and sd_b == 0:
            out[name] = TTest(NAN, NAN, NAN, name, "both groups have zero variance; t is undefined")
            continue
        r = sps.ttest_ind_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b, equal_var=equal_var)
        df = float(n_a + n_b - 2) if equal_var else welch_df(sd_a, n_a, sd_b, n_b)
        out[name] = TTest(float(r.statistic), float(r.pvalue), df, name)
    d, _ = _d_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b)
    return ReportedComparison(diff=mean_a - mean_b, welch=out["welch"], student=out["student"], d=d)


def d_required_for_p(p: float, n_a: int, n_b: int) -> float:
    """|d| at which a two-sided Student t test (pooled SD) has p-value ``p``.

    ``t = d·sqrt(n_a·n_b/(n_a+n_b))``, ``df = n_a+n_b-2``, so ``d = t_{1-p/2, df} / sqrt(n_a·n_b/(n_a+n_b))``.
    """
    from scipy import stats as sps

    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    n_a, n_b = _check_n(n_a, "n_a"), _check_n(n_b, "n_b")
    t = float(sps.t.isf(p / 2, n_a + n_b - 2))
    return t / math.sqrt(n_a * n_b / (n_a + n_b))


def p_implied_by_d(d: float, n_a: int, n_b: int) -> float:
    """Two-sided Student p-value for Cohen's d (pooled SD) with group sizes ``n_a``, ``n_b``."""
    from scipy import stats as sps

    n_a, n_b = _check_n(n_a, "n_a"), _check_n(n_b, "n_b")
    t = abs(d) * math.sqrt(n_a * n_b / (n_a + n_b))
    return float(2 * sps.t.sf(t, n_a + n_b - 2))


# --------------------------------------------------------------------------- power: how many seeds a test needs


def t_test_power(diff: float, sd: float, n_a: int, n_b: int, alpha: float = 0.05) -> float:
    """Probability that a two-sided two-sample t test at level ``alpha`` gives p < ``alpha`` when the true
    difference of means is ``diff`` and both groups have the seed-to-seed SD ``sd``.

    ``T`` is noncentral t with ``df = n_a + n_b − 2`` and noncentrality ``diff / (sd·sqrt(1/n_a + 1/n_b))``;
    power is ``P(|T| > t_{1−α/2, df})`` (``scipy.stats.nct``). This is Student's test; with equal SDs and equal n,
    Welch's test has the same df and t, so the same power.
    """
    from scipy import stats as sps

    n_a, n_b = _check_n(n_a, "n_a"), _check_n(n_b, "n_b")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not sd > 0:
        raise ValueError(f"sd must be > 0 (a seed-to-seed standard deviation), got {sd}")
    df = n_a + n_b - 2
    crit = float(sps.t.isf(alpha / 2, df))
    nc = abs(diff) / (sd * math.sqrt(1 / n_a + 1 / n_b))  # the test is two-sided: the sign does not matter
    # the far tail P(T < −crit) as nct.sf(crit, df, −nc): the same number by symmetry, where scipy's nct.cdf
    # returns NaN for some large noncentralities (e.g. 12 and 16 at df 4)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.sf(crit, df, -nc))


def detectable_difference(sd: float, n_a: int, n_b: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference of means (same unit as ``sd``) that :func:`t_test_power` detects with
    probability ``power`` (``scipy.optimize.brentq``)."""
    from scipy.optimize import brentq

    if not alpha < power < 1:
        raise ValueError(f"power must be in (alpha, 1) = ({alpha}, 1), got {power}")
    hi = sd
    while t_test_power(hi, sd, n_a, n_b, alpha) < power:
        hi *= 2
    return float(brentq(lambda d: t_test_power(d, sd, n_a, n_b, alpha) - power, 0.0, hi, xtol=1e-9 * sd))


def seeds_needed(diff: float, sd: float, alpha: float = 0.05, power: float = 0.8, most: int = 1000) -> int:
    """The smallest number of seeds per model (the same for both) with which :func:`t_test_power` reaches
    ``power`` for a true difference ``diff``; ``ValueError`` beyond ``most``."""
    for n in range(2, most + 1):
        if t_test_power(diff, sd, n, n, alpha) >= power:
            return n
    raise ValueError(f"more than {most} seeds per model would be needed for a difference of {diff} at SD {sd}")


def power_table(diff: float, sds: Mapping[str, float], n: int = 3, alpha: float = 0.05,
                power: float = 0.8) -> "pd.DataFrame":
    """For each source of a seed-to-seed SD (label → σ): the power of an ``n`` + ``n`` seed test to detect the true
    difference ``diff``, the smallest difference it detects with probability ``power``, and the seeds per model
    that ``diff`` needs for that power."""
    import pandas as pd

    rows = [{"σ from": label, "σ (pp)": sd, "power": t_test_power(diff, sd, n, n, alpha),
             "detectable (pp)": detectable_difference(sd, n, n, alpha, power),
             "seeds needed": seeds_needed(diff, sd, alpha, power)} for label, sd in sds.items()]
    return pd.DataFrame(rows, columns=["σ from", "σ (pp)", "power", "detectable (pp)", "seeds needed"])


# --------------------------------------------------------------------------- report consistency


@dataclass(frozen=True)
class ConsistencyCheck:
    """One claimed number against the interval the other reported numbers allow."""

    quantity: str
    claimed: float
    claimed_low: float  # the claim's own rounding interval
    claimed_high: float
    implied: float  # from the reported numbers as printed
    implied_low: float  # over the rounding box of the reported numbers
    implied_high: float
    consistent: bool
    note: str


@dataclass(frozen=True)
class ConsistencyReport:
    implied: ReportedComparison
    checks: Tuple[ConsistencyCheck, ...]
    d_for_claimed_p: float | None
    p_for_claimed_d: float | None

    @property
    def consistent(self) -> bool:
        return all(c.consistent for c in self.checks)

    def as_rows(self) -> list:
        return [asdict(c) for c in self.checks]


def _half_unit(x: float) -> float:
    """Half a unit in the last printed significant digit of ``x`` (its rounding radius)."""
    if x == 0 or not math.isfinite(x):
        return 0.0
    exponent = Decimal(f"{abs(x):.10g}").as_tuple().exponent
    assert isinstance(exponent, int)  # x is finite: not NaN's "n" nor infinity's "F"
    return 0.5 * 10.0 ** exponent


def _overlap(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> bool:
    return a_lo <= b_hi and b_lo <= a_hi


def report_consistency(claims: Mapping[str, Any] | None = None, **kwargs: Any) -> ConsistencyReport:
    """Check a report's summary statistics against its claimed p-value, Cohen's d and difference.

    ``claims`` (and/or keyword arguments, which override it) holds:

    * ``mean_a, sd_a, n_a`` — baseline, ``mean_b, sd_b, n_b`` — candidate (errors in %, sd = ±σ);
    * ``p`` — claimed two-sided p-value (optional), ``d`` — claimed Cohen's d (optional),
      ``diff`` — claimed mean difference a − b (optional);
    * ``resolution`` — rounding radius of the printed means/SDs (default: half a unit in the
      last printed digit of each number, e.g. 0.005 for ``3.45``; ``0`` disables it). Pass it
      explicitly when numbers come from YAML/JSON, where ``3.50`` arrives as ``3.5`` and the
      inferred radius would be 0.05. The claims' own radii (``p``, ``d``, ``diff``) are always
      inferred from their printed digits.

    Each claim is compared with the interval its counterpart can take when every reported
    mean and SD moves within its rounding radius (d and t are monotone in the difference and
    the SDs, so the extremes lie at the corners). A claim is *consistent* when its own rounding
    interval (``1.3`` → [1.25, 1.35]) overlaps that interval; for p both Welch and Student are
    allowed. The claimed p and d are also checked against each other (Student, pooled SD).
    """
    c = dict(claims or {})
    c.update(kwargs)
    missing = [k for k in ("mean_a", "sd_a", "n_a", "mean_b", "sd_b", "n_b") if k not in c]
    if missing:
        raise ValueError(f"report_consistency needs {', '.join(missing)}; pass them from the claims file")
    ma, sa, na = float(c["mean_a"]), float(c["sd_a"]), c["n_a"]
    mb, sb, nb = float(c["mean_b"]), float(c["sd_b"]), c["n_b"]
    implied = from_reported(ma, sa, na, mb, sb, nb)
    na, nb = int(na), int(nb)

    res = c.get("resolution")
    r = {k: (float(res) if res is not None else _half_unit(v)) for k, v in (("ma", ma), ("sa", sa), ("mb", mb), ("sb", sb))}
    corners = []
    for dma in (-r["ma"], r["ma"]):
        for dmb in (-r["mb"], r["mb"]):
            for dsa in (-r["sa"], r["sa"]):
                for dsb in (-r["sb"], r["sb"]):
                    s1, s2 = max(sa + dsa, 0.0), max(sb + dsb, 0.0)
                    if s1 == 0 and s2 == 0:
                        continue
                    corners.append(from_reported(ma + dma, s1, na, mb + dmb, s2, nb))
    if not corners:
        corners = [implied]

    checks = []
    if c.get("diff") is not None:
        cl = float(c["diff"])
        h = _half_unit(cl)
        lo, hi = min(x.diff for x in corners), max(x.diff for x in corners)
        checks.append(ConsistencyCheck("diff", cl, cl - h, cl + h, implied.diff, lo, hi, _overlap(cl - h, cl + h, lo, hi),
                                       "mean_a - mean_b of the reported means"))
    d_for_p = p_for_d = None
    if c.get("p") is not None:
        cl = float(c["p"])
        h = _half_unit(cl)
        ps = [x.welch.p for x in corners] + [x.student.p for x in corners]
        lo, hi = float(np.nanmin(ps)), float(np.nanmax(ps))
        checks.append(ConsistencyCheck(
            "p", cl, cl - h, cl + h, implied.welch.p, lo, hi, _overlap(cl - h, cl + h, lo, hi),
            f"two-sided; implied Welch p={implied.welch.p:.3g} (df={implied.welch.df:.2f}), "
            f"Student p={implied.student.p:.3g} (df={implied.student.df:.0f}), t={implied.welch.t:.3g}"))
        d_for_p = d_required_for_p(cl, na, nb)
    if c.get("d") is not None:
        cl = float(c["d"])
        h = _half_unit(cl)
        ds = [x.d for x in corners]
        lo, hi = float(np.nanmin(ds)), float(np.nanmax(ds))
        checks.append(ConsistencyCheck("d", cl, cl - h, cl + h, implied.d, lo, hi, _overlap(cl - h, cl + h, lo, hi),
                                       "Cohen's d with pooled SD of the reported ±σ"))
        p_for_d = p_implied_by_d(cl, na, nb)
    if c.get("p") is not None and c.get("d") is not None:
        cp, cd = float(c["p"]), float(c["d"])
        hp, hd = _half_unit(cp), _half_unit(cd)
        # p is decreasing in |d|: the claimed d interval maps to [p(d_hi), p(d_lo)].
        p_lo, p_hi = p_implied_by_d(abs(cd) + hd, na, nb), p_implied_by_d(max(abs(cd) - hd, 0.0), na, nb)
        assert p_for_d is not None and d_for_p is not None  # both set above: p and d are given
        checks.append(ConsistencyCheck(
            "p_vs_d", cp, cp - hp, cp + hp, p_for_d, p_lo, p_hi, _overlap(cp - hp, cp + hp, p_lo, p_hi),
            f"p implied by the claimed d alone (Student, n={na},{nb}); the claimed p needs d≈{d_for_p:.3g}"))
    return ConsistencyReport(implied=implied, checks=tuple(checks), d_for_claimed_p=d_for_p, p_for_claimed_d=p_for_d)


# --------------------------------------------------------------------------- efficiency


def efficiency_table(rows: Iterable[Mapping[str, Any]]):
    """The report's "Error-Drop Efficiency" table, recomputed.

    Each row is a mapping with ``variant``, ``baseline``, ``params_variant``,
    ``params_baseline`` (millions), ``error_variant``, ``error_baseline`` (percent);
    optional ``params_resolution`` (e.g. 0.005 when params were printed to 0.01 M) adds
    the range the ratio can take because of that rounding.

    Returns a DataFrame with ``delta_params_m = params_variant - params_baseline``,
    ``delta_error_pct = error_variant - error_baseline`` and
    ``params_per_1pct_drop_m = delta_params_m / (-delta_error_pct)``; the ratio is only
    meaningful when the error drops, otherwise it is NaN and ``note`` says why.

    The report does not name the baselines; its numbers match SE-ResNet-110 vs ResNet-56
    (+0.85 M, −1.07 %, 0.79) and SE-Res2Net-29 vs Res2Net-29 (+0.02 M, −0.47 %, 0.04). The
    first pair differs in depth as well as SE, so its ΔParams is not the cost of SE alone.
    """
    import pandas as pd

    out = []
    for i, row in enumerate(rows):
        missing = [k for k in ("variant", "baseline", "params_variant", "params_baseline", "error_variant", "error_baseline")
                   if k not in row]
        if missing:
            raise ValueError(f"efficiency row {i} lacks {', '.join(missing)}")
        dp = float(row["params_variant"]) - float(row["params_baseline"])
        de = float(row["error_variant"]) - float(row["error_baseline"])
        note = ""
        ratio = lo = hi = NAN
        if math.isnan(de) or math.isnan(dp):
            note = "missing params or error"
        elif de < 0:
            ratio = dp / -de
            res = row.get("params_resolution")
            if res is not None:
                lo, hi = (dp - 2 * float(res)) / -de, (dp + 2 * float(res)) / -de
        else:
            note = "error did not drop (ΔError ≥ 0); params per 1% drop is undefined"
        out.append({
            "variant": row["variant"], "baseline": row["baseline"],
            "delta_params_m": dp, "delta_error_pct": de, "params_per_1pct_drop_m": ratio,
            "ratio_low": lo, "ratio_high": hi, "note": note,
        })
    cols = ["variant", "baseline", "delta_params_m", "delta_error_pct", "params_per_1pct_drop_m", "ratio_low", "ratio_high", "note"]
    return pd.DataFrame(out, columns=cols)


# --------------------------------------------------------------------------- formatting


def format_sig(x: Any, digits: int = 2, na: str = "—") -> str:
    """``x`` to ``digits`` significant digits in plain notation (``0.0052``, ``0.81``, ``12``), ``na`` for NaN/None.

    For statistics whose later digits carry no information (p-values, effect sizes from three seeds);
    Python's ``g`` format would switch to exponents below 1e-4, which a table should not show.
    """
    if not isinstance(x, (int, float, np.floating, np.integer)) or isinstance(x, bool) or not math.isfinite(float(x)):
        return na
    # trailing zeros are significant digits ("0.80", not "0.8"); a bare trailing point is not ("10.")
    return np.format_float_positional(float(x), precision=digits, unique=False, fractional=False, trim="k").rstrip(".")


def format_p(p: Any, digits: int = 2, na: str = "—") -> str:
    """A p-value to ``digits`` significant digits (:func:`format_sig`); below ``1e-4`` as ``< 0.0001``."""
    if p is not None and isinstance(p, (int, float, np.floating)) and math.isfinite(float(p)) and 0 < float(p) < 1e-4:
        return "< 0.0001"
    return format_sig(p, digits, na)


#: How :func:`consistency_display` names each check of :func:`report_consistency`.
CHECK_NAMES = {"diff": "Δ = mean a − mean b (pp)", "p": "p (two-sided)", "d": "Cohen's d",
               "p_vs_d": "p implied by the claimed d alone"}


def consistency_display(report: ConsistencyReport) -> "pd.DataFrame":
    """The checks of :func:`report_consistency` for a reader: what is checked, the claimed value with its rounding
    range, the value the reported means ± σ imply with the range their rounding allows, whether the two overlap
    ("yes"/"no") and how it was computed (folded into a ``<details>``). p-values and d to two significant digits,
    Δ to three: its rounding range (half a unit of the printed 0.01 pp) needs the third."""
    import html

    import pandas as pd

    def fmt(quantity: str, x: float) -> str:
        return format_sig(x, 3) if quantity == "diff" else (format_p(x) if quantity.startswith("p") else format_sig(x))

    rows = []
    for c in report.checks:
        q = c.quantity
        rows.append({
            "quantity": CHECK_NAMES.get(q, q),
            # the claim as the report printed it; its rounding range needs one digit more
            "claimed (rounding range)": f"{c.claimed:g} ({c.claimed_low:g}–{c.claimed_high:g})",
            "implied (rounding range)": f"{fmt(q, c.implied)} ({fmt(q, c.implied_low)}–{fmt(q, c.implied_high)})",
            "consistent": "yes" if c.consistent else "no",
            "how": f"<details><summary>how</summary>{html.escape(c.note)}</details>" if c.note else "",
        })
    return pd.DataFrame(rows, columns=["quantity", "claimed (rounding range)", "implied (rounding range)",
                                       "consistent", "how"])
