"""Serve MathJax 3 from the built site instead of a CDN.

The book must typeset its math without network access (CI has none but the package registries).
MathJax 3 comes from the PyPI package ``django-static-mathjax`` (pure static files, no dependencies,
importable as ``mathjax``). At ``config-inited`` we point Sphinx's ``mathjax_path`` at
``_static/mathjax/tex-chtml.js``; at ``build-finished`` we copy the parts MathJax loads
(the component, TeX extensions, CHTML fonts, UI and a11y modules) into ``_build/html/_static/mathjax``.

Without the package the build keeps Sphinx's default (a CDN) and logs why; the browser test then
reports math that did not typeset.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

from sphinx.util import logging

log = logging.getLogger(__name__)

ENTRY = "tex-chtml.js"
PARTS = ("input/tex/extensions", "output/chtml", "ui", "a11y", "adaptors")


def mathjax_es5_dir() -> Optional[Path]:
    try:
        import mathjax  # django-static-mathjax
    except ImportError:
        return None
    es5 = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    return es5 if (es5 / ENTRY).is_file() else None


def _config_inited(app: Any, config: Any) -> None:
    if mathjax_es5_dir() is None:
        log.info("local_mathjax: package django-static-mathjax not installed; MathJax loads from its CDN")
        return
    config.mathjax_path = f"mathjax/{ENTRY}"


def _build_finished(app: Any, exc: Optional[BaseException]) -> None:
    es5 = mathjax_es5_dir()
    if exc is not None or es5 is None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5 / ENTRY, dest / ENTRY)
    for part in PARTS:
        src = es5 / part
        if src.is_dir():
            shutil.copytree(src, dest / part, dirs_exist_ok=True)


def setup(app: Any) -> dict:
    app.connect("config-inited", _config_inited)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
