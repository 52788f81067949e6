"""The literature file and what is computed from it: frontier, σ probabilities, the ledger's literature column."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from scipy import stats as sps

from se_res2net.audit import claims as C
from se_res2net.audit import literature as L

ROOT = Path(__file__).resolve().parent.parent
LIT = ROOT / "book" / "literature.yaml"
BIB = ROOT / "book" / "references.bib"


@pytest.fixture(scope="module")
def entries():
    return L.load_literature(LIT)


@pytest.fixture(scope="module")
def claim_list():
    return C.load_claims(ROOT / "book" / "claims.yaml")


def test_every_entry_has_a_source_in_the_bibliography(entries):
    keys = set(re.findall(r"@\w+\{([^,]+),", BIB.read_text(encoding="utf-8")))
    assert {e.source for e in entries} <= keys, sorted({e.source for e in entries} - keys)
    # each is labelled author–year from its BibTeX entry, never by its key
    assert all(e.cite != e.source and re.search(r", (19|20)\d\d[a-z]?$", e.cite) for e in entries), \
        [(e.source, e.cite) for e in entries if e.cite == e.source]
    by_key = {e.source: e for e in entries}
    assert by_key["he2016identity"].source_title == "Identity Mappings in Deep Residual Networks"
    assert all(e.where and e.protocol for e in entries)
    # the report's baselines each have a published result of their own architecture
    assert {"resnet56", "densenet_bc100", "se_resnet110"} <= {e.ours for e in entries}


def test_bad_literature_files_are_refused(tmp_path):
    good = ("schema: se_res2net.literature/1\nentries:\n  - {id: a, model: M, family: resnet, kind: paper, error: 5.0, "
            "statistic: single, augmentation: standard, protocol: p, source: s, where: w%s}\n")
    p = tmp_path / "l.yaml"
    p.write_text(good % "")
    with pytest.raises(FileNotFoundError, match="references.bib"):
        L.load_literature(p)
    (tmp_path / "references.bib").write_text("@misc{s, author = {Doe, Jane}, title = {T}, year = {2020}}\n")
    e = L.load_literature(p)[0]
    assert e.error == 5.0 and e.cite == "Doe, 2020" and e.source_title == "T"
    p.write_text(good.replace("source: s,", "source: t,") % "")
    with pytest.raises(ValueError, match="source 't' is not a key of .*references.bib; add its BibTeX entry"):
        L.load_literature(p)
    for text, msg in ((good % ", error2: 1", "unknown fields"),
                      (good.replace("statistic: single", "statistic: mode") % "", "statistic must be")):
        p.write_text(text)
        with pytest.raises(ValueError, match=msg):
            L.load_literature(p)
    p.write_text(good.replace("error: 5.0", "error: 140") % "")
    with pytest.raises(ValueError, match="not a percentage"):
        L.load_literature(p)
    p.write_text(good.replace("source: s, ", "") % "")
    with pytest.raises(ValueError, match="source"):
        L.load_literature(p)


def _entry(i, error, params, aug="standard", sd=None, ours=None):
    return L.Entry(id=f"e{i}", model=f"M{i}", ours=ours, family="resnet", kind="paper", error=error,
                   statistic="single", sd=sd, runs=None, params_m=params, macs_m=None, flops_as_published=None,
                   augmentation=aug, protocol="p", source="s", where="w", url="")


def test_frontier_is_the_lowest_error_at_or_below_each_size():
    es = [_entry(0, 8.0, 0.3), _entry(1, 7.0, 0.5), _entry(2, 7.5, 0.6), _entry(3, 4.0, 1.0),
          _entry(4, 2.0, 0.4, aug="other"), _entry(5, 3.0, None)]
    assert [e.id for e in L.frontier(es)] == ["e0", "e1", "e3"]  # e2 is beaten by a smaller model; e4, e5 excluded
    assert L.frontier_error(es, 0.65).id == "e1"
    assert L.frontier_error(es, 0.2) is None


def test_sigma_check_is_the_chi_square_probability(claim_list):
    es = [_entry(0, 6.0, 1.0, sd=0.15), _entry(1, 6.0, 1.0, sd=0.30)]
    sig = L.sigma_check(claim_list, es).set_index("claim")
    e1 = next(c for c in claim_list if c.id == "E1")
    want = sps.chi2.cdf((e1.n - 1) * e1.sd**2 / 0.15**2, e1.n - 1)  # the smallest published σ
    assert sig.at["E1", "P(s ≤ claimed | published σ)"] == pytest.approx(want)
    binom = 100 * math.sqrt(e1.value / 100 * (1 - e1.value / 100) / 10_000)
    assert sig.at["E1", "binomial σ at the claimed error (pp)"] == pytest.approx(binom)
    rows = sig.drop(index="all")
    assert sig.at["all", "P(s ≤ claimed | published σ)"] == pytest.approx(rows["P(s ≤ claimed | published σ)"].prod())


def test_literature_checks_flag_a_claim_below_the_frontier(claim_list):
    es = [_entry(0, 7.5, 0.5, sd=0.2), _entry(1, 4.5, 0.8, ours="densenet_bc100"), _entry(2, 2.5, 30.0, aug="other")]
    checks = L.literature_checks(claim_list, es)
    assert checks["E1"][0] == C.IMPLAUSIBLE  # 2.98 % at 0.65 M vs 7.5 % at ≤ 0.65 M, margin 0.6 pp
    assert checks["E4"][0] == "in line with the literature"  # 3.92 vs 4.5: 0.58 pp below, inside the margin
    assert "better than all" in checks["E4"][1]
    assert checks["R2"][0] == C.CONTRADICTED and "2.5 %" in checks["R2"][1]  # a published 2.5 % < 2.98 %
    higher = [_entry(0, 7.5, 0.5, sd=0.2), _entry(1, 3.5, 30.0)]
    assert L.literature_checks(claim_list, higher)["R2"][0] == "in line with the literature"


def test_literature_sits_beside_a_measurement_and_never_replaces_it(claim_list):
    import pandas as pd

    from se_res2net.audit.results import RECORD_COLUMNS

    es = [_entry(0, 7.5, 0.5, sd=0.2)]
    e1 = [c for c in claim_list if c.id in ("E1", "P1")]
    empty = pd.DataFrame(columns=RECORD_COLUMNS)
    t = C.ledger(e1, empty, literature=es).set_index("id")
    assert t.at["E1", "verdict"] == C.NOT_YET and t.at["E1", "class"] == C.IMPLAUSIBLE
    rows = [{"profile": "full", "model": "se_res2net29", "seed": s, "status": "complete", "state": "complete",
             "final_test_error": 2.98 + 0.01 * s, "device_name": "GPU", "data_is_sample": False} for s in range(3)]
    t = C.ledger(e1, pd.DataFrame(rows, columns=RECORD_COLUMNS), literature=es).set_index("id")
    assert t.at["E1", "class"] == C.REPRODUCED  # measured: the measurement is the class
    assert t.at["E1", "literature"].startswith(C.IMPLAUSIBLE)  # and the literature still says so beside it


def test_the_real_file_judges_the_headline(entries, claim_list):
    checks = L.literature_checks(claim_list, entries)
    assert checks["E1"][0] == C.IMPLAUSIBLE
    assert checks["R2"][0] == C.CONTRADICTED
