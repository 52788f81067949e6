"""The Jupyter Book: it builds with warnings as errors, and its pages work in a real (headless) browser.

One build per session (``built_book`` fixture), shared by the build test and the browser test:
``jupyter-book build book -W -n --keep-going`` in place (``book/_build`` is git-ignored), from the
committed run records. ``SE_RES2NET_BOOK_DIR`` builds another copy of the book instead (development).

The browser test serves ``book/_build/html`` on 127.0.0.1 (a free port) and opens pages in headless
Chromium through selenium: MathJax typesets, every image loads, internal links resolve, no output shows
a traceback. A screenshot of each page goes to ``book/_build/screenshots/``. Without Chromium the browser
test is skipped, except on CI (``CI=true``), where it fails.
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
         "ledger", "literature", "reproduce", "references"]
BROWSER_PAGES = ["intro", "block", "complexity", "results", "significance", "ledger", "literature", "gradcam"]
MATH_PAGES = {"intro", "block", "significance", "literature"}
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,2000"]
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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


@pytest.mark.slow
def test_book_builds_without_warnings(built_book):
    rc, log = built_book
    # Sphinx's "path: WARNING: ..." lines (not the kernel's "[IPKernelApp] WARNING | ..." chatter).
    warnings = [line for line in log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL):", line)]
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
    from se_res2net.results import load_records

    profiles = set(load_records(BOOK / "runs")["profile"])  # profiles with complete runs have curves
    n_parity = len(list((BOOK / "parity").glob("*.json")))
    assert protocol.count("<img") >= len(profiles) + n_parity, "figures missing from protocol.html"
    # The literature chapter draws the accuracy-vs-parameters frontier; the ledger shows every claim with a class.
    assert (HTML / "literature.html").read_text(encoding="utf-8").count("<img") >= 1, "frontier plot missing"
    ledger_html = (HTML / "ledger.html").read_text(encoding="utf-8")
    from se_res2net.claims import load_claims

    for c in load_claims(BOOK / "claims.yaml"):
        assert f"<b>{c.id}</b>" in ledger_html, f"claim {c.id} missing from the ledger page"
    # Every run notebook present was rendered (listed by the runs/*/* glob of _toc.yml).
    for nb in sorted((BOOK / "runs").glob("*/*.ipynb")):
        assert (HTML / "runs" / nb.parent.name / f"{nb.stem}.html").is_file(), nb
        # ...with papermill's outputs: the build never re-executes a run notebook.
        assert f"{nb}: Executing notebook" not in log, f"the build re-executed {nb}"


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
        msg = f"headless Chromium not found ({CHROMIUM}, {CHROMEDRIVER}); install: apt-get install chromium chromium-driver"
        if ON_CI:
            pytest.fail(msg + " (CI=true: the browser test must run)")
        pytest.skip(msg)
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


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", BROWSER_PAGES)
def test_page_in_browser(page, site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site + f"{page}.html")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    if page in MATH_PAGES:
        try:
            WebDriverWait(browser, 30).until(
                lambda d: d.execute_script("return document.querySelectorAll('mjx-container').length") > 0)
        except Exception:
            pytest.fail(f"{page}: MathJax typeset no math (no mjx-container) within 30 s")
    # every image loaded
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete)"))
    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.currentSrc || i.src)")
    assert not broken, f"{page}: images that did not load: {broken}"
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
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return Math.min(document.body.scrollHeight, 8000)")
    browser.set_window_size(1400, max(800, int(height)))
    time.sleep(0.2)
    browser.save_screenshot(str(SCREENSHOTS / f"{page}.png"))
    browser.set_window_size(1400, 2000)
