"""Author–year citations that tell apart papers with the same authors and year ("He et al., 2016a", "2016b").

sphinxcontrib-bibtex's ``author_year`` style prints an entry's year as it is, so the prose cited both 2016 papers
of He et al. as "He et al., 2016", while the tables computed in cells (``se_res2net.audit.bibliography``) say
2016a and 2016b. Once sphinxcontrib-bibtex has parsed the bibliography, this gives each such entry its year with
the suffix that function chose, so the prose, the tables and the reference list name a paper the same way.
The year is rewritten from the file every build, so a cached environment does not add a second letter.
"""

from pathlib import Path


def _suffix_years(app):
    from se_res2net.audit.bibliography import load_bibliography

    entries = app.env.get_domain("cite").bibdata.data.entries
    for name in app.config.bibtex_bibfiles:
        for key, ref in load_bibliography(Path(app.confdir) / name).items():
            if ref.suffix and key in entries:
                entries[key].fields["year"] = ref.year + ref.suffix


def setup(app):
    app.setup_extension("sphinxcontrib.bibtex")
    # after sphinxcontrib-bibtex's own builder-inited handler (priority 500), which parses the files
    app.connect("builder-inited", _suffix_years, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
