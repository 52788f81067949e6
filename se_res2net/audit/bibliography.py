"""The book's bibliography (``book/references.bib``) as author–year labels for tables.

The prose cites with ``{cite}`` and sphinxcontrib-bibtex's ``author_year`` style ("He et al., 2016"); a table
cell computed in a notebook cell cannot use that role, and a BibTeX key ("he2016identity") is not a citation a
reader knows. :func:`load_bibliography` reads the file with pybtex (the parser sphinxcontrib-bibtex itself
uses) and labels each entry the way that style does: one author "Yang, 2017", two "Zagoruyko and Komodakis,
2016", three or more "He et al., 2016". Where two entries would get the same label (He et al.'s two 2016
papers) a year suffix tells them apart, as author–date styles do (CSL's ``disambiguate-add-year-suffix``):
"2016a", "2016b", lettered in order of title. The book's prose and reference list get the same suffixes
(``book/_ext/year_suffix.py``), so a label means one paper on every page.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Union

__all__ = ["Reference", "load_bibliography"]

PathLike = Union[str, Path]
_SUFFIXES = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Reference:
    """One entry of the bibliography: its key, author–year label, title and URL (empty when it gives none); the
    label's year is ``year`` followed by ``suffix`` ("" unless another entry has the same authors and year)."""

    key: str
    label: str
    title: str
    url: str
    year: str
    suffix: str


def _text(latex: str) -> str:
    """BibTeX field text as plain Unicode ("S{\\'e}mery" → "Sémery", braces dropped)."""
    from pybtex.richtext import Text

    return str(Text.from_latex(latex).render_as("text"))


def _names(entry) -> str:  # type: ignore[no-untyped-def]
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    last = [_text(" ".join(p.prelast_names + p.last_names)) for p in persons]
    if not last:
        # no author or editor (a web page, a data set): author–date styles put the title first
        return _text(entry.fields.get("title", "")) or "Anonymous"
    if len(last) == 1:
        return last[0]
    if len(last) == 2:
        return f"{last[0]} and {last[1]}"
    return f"{last[0]} et al."


def load_bibliography(path: PathLike) -> Dict[str, Reference]:
    """Each entry of the BibTeX file ``path`` by key; a missing file or one pybtex cannot parse is one error
    naming the file."""
    from pybtex.database import parse_file
    from pybtex.exceptions import PybtexError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"bibliography {p} does not exist; pass the path of book/references.bib")
    try:
        db = parse_file(str(p), bib_format="bibtex")
    except PybtexError as exc:
        raise ValueError(f"bibliography {p} is not valid BibTeX: {exc}") from exc
    base: Dict[str, str] = {}
    years: Dict[str, str] = {}
    groups: Dict[str, List[str]] = defaultdict(list)
    for key, entry in db.entries.items():
        years[key] = _text(entry.fields.get("year", "")) or "n.d."
        base[key] = f"{_names(entry)}, {years[key]}"
        groups[base[key]].append(key)
    titles = {key: _text(e.fields.get("title", "")) for key, e in db.entries.items()}
    suffix = {key: "" for key in db.entries}
    for same in groups.values():
        if len(same) > len(_SUFFIXES):
            raise ValueError(f"bibliography {p}: {len(same)} entries share the label {base[same[0]]!r}; "
                             f"at most {len(_SUFFIXES)} can be told apart by a year suffix")
        if len(same) > 1:
            for letter, key in zip(_SUFFIXES, sorted(same, key=lambda k: (titles[k].lower(), k))):
                suffix[key] = letter
    return {key: Reference(key=key, label=base[key] + suffix[key], title=titles[key],
                           url=str(e.fields.get("url", "")), year=years[key], suffix=suffix[key])
            for key, e in db.entries.items()}
