"""Author–year labels from a BibTeX file, as the book's tables cite their sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from se_res2net.audit.bibliography import load_bibliography

ROOT = Path(__file__).resolve().parent.parent


def _bib(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.bib"
    p.write_text(text, encoding="utf-8")
    return p


def test_labels_follow_the_author_year_style_of_the_prose(tmp_path):
    refs = load_bibliography(_bib(tmp_path, """
@misc{one, author = {S{\\'e}mery, Oleg}, title = {imgclsmob}, year = {2018}, url = {https://x.org/a}}
@inproceedings{two, author = {Zagoruyko, Sergey and Komodakis, Nikos}, title = {Wide Residual Networks}, year = {2016}}
@inproceedings{three, author = {Huang, Gao and Liu, Zhuang and van der Maaten, Laurens}, title = {Dense}, year = {2017}}
@inproceedings{vdm, author = {van der Maaten, Laurens and Hinton, Geoffrey}, title = {t-SNE}, year = {2008}}
@techreport{corp, author = {{Agent Laboratory}}, title = {Report}, year = {2021}}
@misc{noauthor, title = {A {Web} Page}, year = {2020}}
@misc{noyear, author = {Doe, Jane}, title = {Undated}}
"""))
    assert {k: r.label for k, r in refs.items()} == {
        "one": "Sémery, 2018", "two": "Zagoruyko and Komodakis, 2016", "three": "Huang et al., 2017",
        "vdm": "van der Maaten and Hinton, 2008", "corp": "Agent Laboratory, 2021", "noauthor": "A Web Page, 2020",
        "noyear": "Doe, n.d."}
    assert refs["one"].url == "https://x.org/a" and refs["two"].url == ""
    assert refs["noauthor"].title == "A Web Page"


def test_same_authors_and_year_get_a_suffix_in_title_order(tmp_path):
    refs = load_bibliography(_bib(tmp_path, """
@inproceedings{he2016identity, author = {He, K. and Zhang, X. and Ren, S. and Sun, J.}, title = {Identity Mappings}, year = {2016}}
@inproceedings{he2016resnet, author = {He, K. and Zhang, X. and Ren, S. and Sun, J.}, title = {Deep Residual Learning}, year = {2016}}
@inproceedings{he2015prelu, author = {He, K. and Zhang, X. and Ren, S. and Sun, J.}, title = {Delving Deep}, year = {2015}}
"""))
    assert refs["he2016resnet"].label == "He et al., 2016a"
    assert refs["he2016identity"].label == "He et al., 2016b"
    assert refs["he2015prelu"].label == "He et al., 2015"  # alone in its year: no suffix
    assert (refs["he2016identity"].year, refs["he2016identity"].suffix, refs["he2015prelu"].suffix) == ("2016", "b", "")


def test_the_books_bibliography_has_one_label_per_entry():
    refs = load_bibliography(ROOT / "book" / "references.bib")
    labels = [r.label for r in refs.values()]
    assert len(set(labels)) == len(labels)
    assert refs["he2016resnet"].label == "He et al., 2016a" and refs["boehle2021coda"].label == "Böhle et al., 2021"


def test_bad_bibliographies_are_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass the path of book/references.bib"):
        load_bibliography(tmp_path / "missing.bib")
    with pytest.raises(ValueError, match=r"r\.bib is not valid BibTeX: .*repeated"):
        load_bibliography(_bib(tmp_path, "@misc{a, title = {x}}\n@misc{a, title = {y}}\n"))
    with pytest.raises(ValueError, match="not valid BibTeX"):
        load_bibliography(_bib(tmp_path, "@misc{a, title = {x, year = 2001}\n"))
