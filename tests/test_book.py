r"""The Jupyter Book: it builds with warnings as errors, and its pages work in a real (headless) browser.

One build per session (``built_book`` fixture), shared by the build test and the browser test:
``jupyter-book build book -W -n --keep-going`` in place (``book/_build`` is git-ignored), from the
committed run records. ``SE_RES2NET_BOOK_DIR`` builds another copy of the book instead (development).
A second build, of a temporary copy with fake full-profile records added (``book_after_a_gpu_block``), shows
the pages as the first GPU block's records will make them, before any GPU has run.

The browser test serves ``book/_build/html`` on 127.0.0.1 (a free port) and opens every page of the site
(the chapters and each rendered run notebook) in headless Chromium through selenium, and checks it as a
reader would (``tests/page_audit.js`` holds the in-page rules): MathJax typesets every formula without an
error node; every image loads with a non-zero size; nothing in the article is wider than the article (a
table may scroll sideways only with its first column fixed); no literal TeX or markdown (``$``, ``\_``,
``\texttt``, ``**``, ``| a | b |`` rows, backticks) shows in the visible prose; every section whose heading
promises a figure (curves, plot, figure, overlays, frontier) shows one, or an element of class
``no-figure`` saying why; internal links resolve; no output shows a traceback. A screenshot of each page
goes to ``book/_build/screenshots/`` (``.ci/run`` keeps them as artifacts). Without Chromium the test
fails with the command that installs it: it never skips silently.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = Path(os.environ.get("SE_RES2NET_BOOK_DIR", ROOT / "book")).resolve()
HTML = BOOK / "_build" / "html"
SCREENSHOTS = BOOK / "_build" / "screenshots"
PAGES = ["intro", "claims", "block", "complexity", "protocol", "results", "significance", "ablation", "gradcam",
         "ledger", "literature", "reproduce", "status", "references"]
# Every page of the site: the chapters and the rendered run notebooks (runs/<profile>/<name>).
BROWSER_PAGES = PAGES + sorted(f"runs/{nb.parent.name}/{nb.stem}" for nb in (BOOK / "runs").glob("*/*.ipynb"))
AUDIT_JS = Path(__file__).with_name("page_audit.js")
INSTALL_CHROMIUM = "apt-get install chromium chromium-driver   (or set CHROMIUM=... CHROMEDRIVER=... to yours)"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,2000"]


def _jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    return str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book")


@pytest.fixture(scope="session")
def built_book():
    """Build the book once; returns (returncode, log text)."""
    env = dict(os.environ, MPLBACKEND="Agg")
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run([_jupyter_book(), "build", str(BOOK), "-W", "-n", "--keep-going"],
                          cwd=BOOK.parent, env=env, capture_output=True, text=True, timeout=1800)
    log = proc.stdout + proc.stderr
    (BOOK / "_build").mkdir(parents=True, exist_ok=True)
    (BOOK / "_build" / "build.log").write_text(log)
    return proc.returncode, log


# A notebook kernel's shutdown race, logged by the kernel process into the build's output after its notebook ran:
# ipykernel publishes "idle" on a socket that close() has just closed (ENOTSOCK). ipykernel PR #1518 (7.x)
# silenced one path of it (IOPubThread._really_send); 7.4.0 still logs it through IOPubThread.schedule. It says
# nothing about the book, and it comes and goes between builds of the same tree.
_SHUTDOWN_RACE = ("ERROR:tornado.general:Uncaught exception in ZMQStream callback",
                  "zmq.error.ZMQError: Socket operation on non-socket")


def build_warnings(log: str) -> list:
    """Sphinx's "path: WARNING: ..." lines and any ERROR / CRITICAL line (not the kernel's "[IPKernelApp]
    WARNING | ..." chatter), less the kernel shutdown race above: its ERROR line, when the traceback under it
    ends in ENOTSOCK."""
    lines = log.splitlines()
    found = []
    for i, line in enumerate(lines):
        if not re.search(r"\b(WARNING|ERROR|CRITICAL):", line):
            continue
        if line.strip() == _SHUTDOWN_RACE[0]:
            tail = next((t.strip() for t in lines[i + 1:i + 60] if re.match(r"[A-Za-z_][\w.]*(Error|Exception)\b", t)), "")
            if tail == _SHUTDOWN_RACE[1]:
                continue
        found.append(line)
    return found


def test_build_warnings_drop_only_the_kernel_shutdown_race():
    race = "\n".join([_SHUTDOWN_RACE[0], "Traceback (most recent call last):", '  File "zmq/_zmq.py", line 190',
                      _SHUTDOWN_RACE[1]])
    other = "\n".join([_SHUTDOWN_RACE[0], "Traceback (most recent call last):", "ValueError: a real failure"])
    sphinx = "/book/results.md:12: WARNING: undefined label: 'nope'"
    chatter = "[IPKernelApp] WARNING | Kernel is running over TCP without encryption."
    assert build_warnings("\n".join([race, chatter])) == []
    assert build_warnings("\n".join([race, other, sphinx])) == [_SHUTDOWN_RACE[0], sphinx]


@pytest.mark.slow
def test_book_builds_without_warnings(built_book):
    rc, log = built_book
    warnings = build_warnings(log)
    assert rc == 0, "jupyter-book build failed:\n" + "\n".join(warnings[-30:] or log.splitlines()[-40:])
    assert not warnings, "\n".join(warnings)
    for page in PAGES:
        assert (HTML / f"{page}.html").is_file(), page
    assert (HTML / "index.html").is_file()
    # MathJax is served by the site itself (no CDN): the pages reference the local copy.
    assert (HTML / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "_static/mathjax/tex-chtml.js" in (HTML / "block.html").read_text(encoding="utf-8")
    # The protocol chapter's figures are in the page (a build with MPLBACKEND=Agg once lost them silently):
    # the training curves of each profile with complete runs, and one plot per parity record.
    protocol = (HTML / "protocol.html").read_text(encoding="utf-8")
    from se_res2net.audit.results import load_records

    profiles = set(load_records(BOOK / "runs")["profile"])  # profiles with complete runs have curves
    n_parity = len(list((BOOK / "parity").glob("*.json")))
    from se_res2net.audit import throughput

    gpu = throughput.load_results(BOOK.parent / "benchmarks" / "gpu")  # the GPU blocks' benches, by their own keys
    n_sharing = 1 if gpu["concurrency"] or gpu["stacked"] else 0
    assert protocol.count("<img") >= len(profiles) + n_parity + n_sharing, "figures missing from protocol.html"
    protocol_text = _text(protocol)
    for r in gpu["bench"]:  # each bench is shown with the machine and time it was measured on
        assert throughput.machine_text(r) in protocol_text, throughput.machine_text(r)
    if not any(gpu.values()):
        assert "Not yet measured on a GPU: no GPU block has left a benchmark result" in protocol_text
    # The significance chapter's power section: its table and its figure, beside the plot of the differences.
    significance = (HTML / "significance.html").read_text(encoding="utf-8")
    assert "Δ detected with 80 % power, 3 + 3 (pp)" in _text(significance), "the power table is missing"
    assert significance.count("<img") >= 2, "figures missing from significance.html"
    # The literature chapter draws the accuracy-vs-parameters frontier; the ledger shows every claim with a class.
    literature_html = (HTML / "literature.html").read_text(encoding="utf-8")
    assert literature_html.count("<img") >= 1, "frontier plot missing"
    # Sources are cited author–year as the prose cites them, never by a BibTeX key a reader does not know
    # (tables computed in cells once printed "he2016identity").
    from se_res2net.audit.bibliography import load_bibliography
    from se_res2net.audit.literature import load_literature

    refs = load_bibliography(BOOK / "references.bib")
    pages = {str(f.relative_to(HTML)): _text(f.read_text(encoding="utf-8")) for f in sorted(HTML.rglob("*.html"))}
    shown = {page: hits for page, text in pages.items() if (hits := sorted(k for k in refs if k in text))}
    assert not shown, f"pages show BibTeX keys: {shown}"
    # ...and a label names one paper on every page: where two share authors and year, prose, tables and the
    # reference list all carry the suffix (book/_ext/year_suffix.py), none the bare "He et al., 2016"
    bare = {r.label[:-len(r.suffix)] for r in refs.values() if r.suffix}
    # (the prose's "He <em>et al.</em>, 2016" is "He et al. , 2016" as text: no space before punctuation)
    joined = {page: re.sub(r"\s+(?=[,.;:)])", "", text) for page, text in pages.items()}
    unsuffixed = {page: hits for page, text in joined.items()
                  if (hits := sorted(b for b in bare if re.search(re.escape(b) + r"(?![a-z])", text)))}
    assert not unsuffixed, f"pages cite without the year suffix: {unsuffixed}"
    references = pages["references.html"]
    assert all(f"{r.year}{r.suffix}" in references for r in refs.values() if r.suffix)
    assert all(e.cite in _text(literature_html) for e in load_literature(BOOK / "literature.yaml"))
    ledger_html = (HTML / "ledger.html").read_text(encoding="utf-8")
    from se_res2net.audit.claims import load_claims

    for c in load_claims(BOOK / "claims.yaml"):
        assert f"<b>{c.id}</b>" in ledger_html, f"claim {c.id} missing from the ledger page"
    # Text reaches the pages escaped: a "<" that opens no tag is text a table printed raw (A5's ordering once did),
    # and the next claim or note that holds "<b" or "<0.5" would turn into markup.
    raw = {str(f.relative_to(HTML)): hits for f in sorted(HTML.rglob("*.html"))
           if (hits := raw_less_than(f.read_text(encoding="utf-8")))}
    assert not raw, raw
    # Every run notebook present was rendered (listed by the runs/*/* glob of _toc.yml).
    for nb in sorted((BOOK / "runs").glob("*/*.ipynb")):
        assert (HTML / "runs" / nb.parent.name / f"{nb.stem}.html").is_file(), nb
        # ...with papermill's outputs: the build never re-executes a run notebook.
        assert f"{nb}: Executing notebook" not in log, f"the build re-executed {nb}"


def raw_less_than(html: str) -> list:
    """Where ``html`` has a "<" that opens no tag, comment or declaration (so: text left unescaped), with context;
    scripts and styles, where "<" is code, are left out."""
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return [html[max(0, m.start() - 40):m.start() + 40] for m in re.finditer(r"<(?![A-Za-z/!?])", html)]


def test_raw_less_than_tells_text_from_tags():
    assert raw_less_than("<p>a &lt; b</p><!-- c --><script>if (i < n) {}</script>") == []
    assert len(raw_less_than("<td>SE on all streams < SE on streams 1,2 <= no SE</td>")) == 2


def _text(html: str) -> str:
    """The visible text of an HTML page, roughly: tags dropped, whitespace collapsed, entities decoded."""
    import html as html_lib

    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(scope="module")
def book_after_a_gpu_block(tmp_path_factory):
    """A copy of the book whose ``runs/`` holds, beside the committed smoke records, what a GPU block brings
    back: complete full-profile records (tests/fakes.py, device "Fake GPU") of the headline pair and one
    ablation variant, three seeds each, and one full run stopped at epoch 40; and a budget profile whose only
    run stopped at epoch 3 (the committed budget runs are replaced by it, so the test does not depend on how far
    they have got). Built as CI builds the book. The fake errors never leave this temporary copy."""
    sys.path.insert(0, str(Path(__file__).parent))
    from fakes import make_record, write_record

    book = tmp_path_factory.mktemp("gpu_block") / "book"
    shutil.copytree(BOOK, book, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    errors = {"res2net29": 5.6, "se_res2net29": 5.3, "se_res2net29_last_stream": 5.5}
    for model, err in errors.items():
        for seed in (0, 1, 2):
            write_record(book / "runs", make_record(model, seed, err + 0.1 * seed, "full"))
    stopped = make_record("resnet56", 0, None, "full", status="running", logged=40)
    stopped["checkpoint"] = "checkpoints/resnet56_seed0.pt"  # written on the GPU machine, too big to come back
    write_record(book / "runs", stopped)
    write_record(book / "runs", make_record("se_res2net29_streams12", 0, None, "full", status="running", logged=100))
    # (its record names no checkpoint: stopped before its first one, it is incomplete and starts again at epoch 0)
    shutil.rmtree(book / "runs" / "budget", ignore_errors=True)
    write_record(book / "runs", make_record("se_res2net29", 0, None, "budget", status="running", logged=3))
    # the budget run's checkpoint came back (< 6 MB, committed); resnet56's (7 MB) stayed on the GPU machine
    (book / "runs" / "budget" / "checkpoints").mkdir()
    (book / "runs" / "budget" / "checkpoints" / "se_res2net29_seed0.pt").write_bytes(b"its checkpoint")
    env = dict(os.environ, MPLBACKEND="Agg")
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run([_jupyter_book(), "build", str(book), "-W", "-n", "--keep-going"], cwd=book.parent,
                          env=env, capture_output=True, text=True, timeout=1800)
    return proc.returncode, proc.stdout + proc.stderr, book / "_build" / "html"


@pytest.mark.slow
def test_gpu_results_lead_and_the_smoke_checks_are_set_aside(book_after_a_gpu_block):
    """What the first GPU block's records will look like in the book: the full profile first; the smoke
    profile's chance-level errors folded away and out of the plots; the stopped run listed as not a result."""
    rc, log, html = book_after_a_gpu_block
    warnings = build_warnings(log)
    assert rc == 0 and not warnings, "\n".join(warnings[-30:] or log.splitlines()[-40:])
    for page in ("results", "significance", "ablation"):
        page_html = (html / f"{page}.html").read_text(encoding="utf-8")
        full, fold = page_html.find("Profile full:"), page_html.find('<details class="set-aside">')
        assert 0 <= full < fold, f"{page}: the full profile's table does not come before the folded smoke tables"
        folded_part = page_html[fold:page_html.index("</details>", page_html.index("</summary>", fold))]
        assert "Profile smoke:" in folded_part and "Profile full:" not in folded_part, page
        text = _text(page_html)
        assert ("Profile smoke (a plumbing check, not a result): its table, set aside and left out of the plots now "
                "that profile full has runs") in text, page
        assert "Profile smoke (plumbing checks) is left out." in text, f"{page}: the figure caption does not say so"
    results_text = _text((html / "results.html").read_text(encoding="utf-8"))
    assert re.search(r"Profile full: 9 complete runs of 3 models, seeds 0–2 \(2 more not complete\), on Fake "
                     r"GPU \(GPU\)", results_text)
    assert re.search(r"full ResNet-56 0 stranded 40 of 300 ", results_text), "the stopped run is not listed as not a result"
    assert "A stranded run is one whose checkpoint is not in the repository" in results_text
    # a profile with no complete run has no table of its own: it is named, and its run listed as not a result
    assert "Profile budget:" not in results_text, "a profile with no complete run leads a table"
    assert "No complete run under profile budget yet: 1 run stopped between epochs or failed" in results_text
    assert re.search(r"budget SE-Res2Net-29 0 incomplete 3 of 30 ", results_text)
    # the ablation page does not call that profile empty: its stopped run is of a model the ablation compares
    ablation_text = _text((html / "ablation.html").read_text(encoding="utf-8"))
    # its profile sentence counts the ablation's own unfinished runs (the stopped SE-on-streams-1-2), not resnet56
    assert re.search(r"Profile full: 9 complete runs of 3 models, seeds 0–2 \(1 more not complete\), on Fake "
                     r"GPU \(GPU\)", ablation_text)
    assert "No runs under profile budget yet" not in ablation_text
    # the variant whose only run stopped is listed beside the report's value, with nothing measured yet
    assert re.search(r"SE on streams i=1,2 0 \(\+1 not complete\) — 3\.04 ", ablation_text), "unfinished variant missing"
    # the power of the 3-seed test at our own seed spread, once a profile has 2 + 2 complete runs of the pair
    significance_text = _text((html / "significance.html").read_text(encoding="utf-8"))
    assert "ours, profile full (n = 3 + 3, Fake GPU (GPU))" in significance_text
    assert "No σ of ours yet" not in significance_text
    assert ("No complete run under profile budget yet: 1 run stopped between epochs or failed, listed on the "
            "Results page under Runs that are not results .") in ablation_text
    intro = _text((html / "intro.html").read_text(encoding="utf-8"))
    assert ("Training so far: the most faithful profile with complete runs is full , with 9 complete runs of 3 "
            "models, 9 on a GPU (Fake GPU).") in intro, "the headline names another profile's runs or hardware"
    # unfinished runs are counted per profile and kind of device (the first real block brought back only stopped ones)
    assert re.search(r"Unfinished: 3 runs, 1 on a GPU under budget ; 2 on a GPU under full \(listed under What "
                     r"remains to run ?\)\.", intro), "the intro does not count the unfinished runs"


def test_book_config_reaches_the_top_level_files():
    for name in ("_config.yml", "_toc.yml"):
        link = ROOT / "book" / name
        assert link.is_symlink(), f"book/{name} must be a symlink to ../{name}"
        assert link.resolve() == (ROOT / name).resolve()


# --------------------------------------------------------------------------- browser


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - keep pytest output clean
        pass


@pytest.fixture(scope="module")
def site(built_book):
    rc, _ = built_book
    if rc != 0 or not (HTML / "index.html").is_file():
        pytest.fail("the book did not build; see test_book_builds_without_warnings")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        # Never a silent skip: the pages are only checked as a reader sees them in a browser.
        pytest.fail(f"headless Chromium not found ({CHROMIUM}, {CHROMEDRIVER}); install it: {INSTALL_CHROMIUM}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _local_file(url: str, base: str) -> Path | None:
    """The file under _build/html a same-site URL points to (None for external URLs)."""
    if not url.startswith(base):
        return None
    path = unquote(urlsplit(url).path)
    rel = path[len(urlsplit(base).path):]
    target = HTML / rel
    if rel == "" or rel.endswith("/"):
        target = target / "index.html"
    return target


_ERROR_RE = re.compile(r"Traceback \(most recent call last\)|^\s*\w+(Error|Exception): ", re.M)


def _audit_report(page: str, findings: dict) -> str:
    names = {"mathErrors": "MathJax errors", "wide": "wider than the article", "literal": "literal TeX/markdown",
             "missingFigures": "sections promising a figure without one"}
    lines = [f"{page}: what a reader would see broken"]
    for key, items in findings.items():
        for item in items[:12]:
            lines.append(f"  [{names.get(key, key)}] {item}")
        if len(items) > 12:
            lines.append(f"  [{names.get(key, key)}] ... and {len(items) - 12} more")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", BROWSER_PAGES)
def test_page_in_browser(page, site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    assert (HTML / f"{page}.html").is_file(), f"{page}.html was not built"
    browser.set_window_size(1400, 2000)
    browser.get(site + f"{page}.html")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    # MathJax typesets every formula of the page (span.math / div.math) before anything is measured.
    n_math = browser.execute_script("return document.querySelectorAll('span.math, div.math').length")
    if n_math:
        try:
            WebDriverWait(browser, 30).until(lambda d: d.execute_script(
                "return [...document.querySelectorAll('span.math, div.math')]"
                ".every(e => e.querySelector('mjx-container'))"))
        except Exception:
            pytest.fail(f"{page}: MathJax did not typeset all {n_math} formulas within 30 s")
    # every image loaded, with a non-zero size
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete)"))
    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.naturalWidth > 0 && i.getBoundingClientRect().width > 0))"
        ".map(i => i.currentSrc || i.src)")
    assert not broken, f"{page}: images that did not load or show with zero size: {broken}"
    # internal links resolve to files of the site
    hrefs = browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    missing = sorted({h for h in hrefs if (f := _local_file(h.split('#')[0].split('?')[0], site)) is not None
                      and not f.exists()})
    assert not missing, f"{page}: broken internal links: {missing}"
    # no traceback or error output in the executed cells
    outputs = browser.execute_script(
        "return [...document.querySelectorAll('.cell_output, .output')].map(e => e.innerText).join('\\n')")
    assert not browser.find_elements("css selector", ".output.traceback, .cell_output .traceback"), page
    m = _ERROR_RE.search(outputs)
    assert m is None, f"{page}: error output: {outputs[max(0, m.start() - 200):m.end() + 200]}"
    body = browser.find_element("tag name", "body").text
    assert "Traceback (most recent call last)" not in body
    # the screenshot first, so a failing page can be looked at
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return Math.min(document.body.scrollHeight, 12000)")
    browser.set_window_size(1400, max(800, int(height)))
    time.sleep(0.3)
    browser.save_screenshot(str(SCREENSHOTS / f"{page.replace('/', '__')}.png"))
    browser.set_window_size(1400, 2000)
    time.sleep(0.3)
    # the reader's checks (tests/page_audit.js): math errors, overflow, literal markup, promised figures
    findings = browser.execute_script(AUDIT_JS.read_text(encoding="utf-8"))
    assert not any(findings.values()), _audit_report(page, findings)


# --------------------------------------------------------------------------- the checker itself

_BAD_PAGE = """<!doctype html><html><head><style>article{width:600px;margin-left:100px}</style></head><body>
<article class="bd-article">
<section id="a"><h2>Training curves</h2><p>Test error per epoch.</p></section>
<section id="b"><h2>Numbers</h2><p>We set $Z$ to base\\_width and \\texttt{thop}.</p>
<p>| **SE-Res2Net-29** | **0.65** |</p>
<div style="overflow-x:auto"><table><tr><td>first</td><td style="min-width:900px">wide</td></tr></table></div>
<div style="width:900px">too wide</div>
<mjx-merror data-mjx-error="\\tag not allowed in split environment">x</mjx-merror>
</section></article></body></html>"""

_GOOD_PAGE = """<!doctype html><html><head><style>article{width:600px;margin-left:100px}
td:first-child{position:sticky;left:0;background:#fff}</style></head><body>
<article class="bd-article">
<section id="a"><h2>Training curves</h2>
<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==" style="width:400px">
</section>
<section id="c"><h2>Loss plot</h2><p class="no-figure">No runs yet under any profile.</p></section>
<section id="b"><h2>Numbers</h2><p>Plain prose with |Δ| and a <code>$HOME</code> in code.</p>
<div style="overflow-x:auto"><table><tr><td>first</td><td style="min-width:900px">scrolls, first column fixed</td></tr></table></div>
<pre style="overflow-x:auto">a very long line of code that may scroll ........................................................................................................</pre>
</section></article></body></html>"""


@pytest.mark.browser
def test_page_audit_finds_what_a_reader_would_see_broken(browser, tmp_path):
    """The rules of page_audit.js on two small pages: one with each defect, one with their allowed forms."""
    findings = {}
    for name, text in (("bad", _BAD_PAGE), ("good", _GOOD_PAGE)):
        (tmp_path / f"{name}.html").write_text(text, encoding="utf-8")
        browser.set_window_size(1400, 1200)
        browser.get((tmp_path / f"{name}.html").as_uri())
        findings[name] = browser.execute_script(AUDIT_JS.read_text(encoding="utf-8"))
    bad, good = findings["bad"], findings["good"]
    assert not any(good.values()), good
    assert bad["mathErrors"] == ["\\tag not allowed in split environment"]
    literal = " ".join(bad["literal"])
    for what in ("literal $", "\\_", "TeX command", "**bold**", "markdown table row"):
        assert what in literal, (what, bad["literal"])
    wide = " ".join(bad["wide"])
    assert "without a fixed first column" in wide and "too wide" in wide, bad["wide"]
    assert bad["missingFigures"] == ['section "Training curves" promises a figure and shows none']


# --------------------------------------------------------------------------- nothing outside the repository

_OUTSIDE = re.compile(r"\.\./shared|shared/seeds|shared/data")


def test_no_reader_facing_text_points_outside_the_repository():
    """The README, the book's sources and the notebooks never send a reader to ../shared: the report under
    audit is cited as unpublished work and quoted where it is judged."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "book").glob("*.md")),
             ROOT / "book" / "references.bib", *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    hits = [f"{f.relative_to(ROOT)}:{i}: {line.strip()[:100]}" for f in files
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if _OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)


@pytest.mark.slow
def test_built_site_links_nothing_outside_itself(built_book):
    rc, _ = built_book
    assert rc == 0
    hits = []
    for page in sorted(HTML.rglob("*.html")):
        for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
            if _OUTSIDE.search(href) or href.startswith("file:"):
                hits.append(f"{page.relative_to(HTML)}: {href}")
    assert not hits, "\n".join(hits[:20])
