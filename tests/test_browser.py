"""Read the built book as a reader would: headless Chromium against the HTML served on localhost.

Every page loads without errors and without any request leaving the machine, math is typeset by the
local MathJax (no raw TeX left, no MathJax errors), every image loads, every internal link and
citation resolves, and the claims appendix shows every claim passing. A screenshot of each chapter is
saved under ``_build/screenshots/`` as a test artifact.

Every page of the built site is also audited with axe-core (bundled by ``axe-playwright-python``),
in the theme's light colour mode and, for colour contrast, in its dark one: a violation of impact
"serious" or "critical" fails the test; "moderate" and "minor" ones are reported as a warning, and
everything is written to ``_build/accessibility.json``.

Needs Debian's ``chromium`` (``python3 tasks.py test`` installs it when run as root) and the
``playwright`` and ``axe-playwright-python`` Python packages; no browser is downloaded.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from lib.book import chapters, paths

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def html_root(book_html):
    return Path(book_html)


@pytest.fixture(scope="module")
def server(book_html):
    handler = functools.partial(QuietHandler, directory=str(book_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def _cannot_run(reason: str):
    """Outside CI a missing browser skips the test, saying why; under CI (``CI=true``) a browser test
    that cannot run fails: a skipped check is not a pass."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the browser test cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        _cannot_run("Debian's chromium is not installed (python3 tasks.py test installs it as root)")
    try:
        from playwright import sync_api
    except ImportError as exc:
        _cannot_run(f"the playwright package is missing ({exc})")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@contextlib.contextmanager
def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    external, failed, errors = [], [], []

    def on_request(req):
        host = urlparse(req.url).hostname
        if req.url.startswith(("http://", "https://")) and host not in ("127.0.0.1", "localhost"):
            external.append(req.url)

    page.on("request", on_request)
    page.on("requestfailed", lambda req: failed.append(req.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="networkidle")
    try:
        yield page, external, failed, errors
    finally:
        page.close()


def _pages():
    return ["book/intro.html"] + [f"book/{s}.html" for s in chapters.chapters()] + [
        "book/appendix-claims.html", "book/appendix-results.html", "book/appendix-reproducibility.html", "book/appendix-figures.html",
        "book/bibliography.html"]


@pytest.mark.parametrize("name", _pages())
def test_page_renders_offline(browser, server, html_root, name):
    with open_page(browser, urljoin(server, name)) as (page, external, failed, errors):
        has_math = page.evaluate("() => typeof MathJax !== 'undefined'")
        if has_math:
            page.evaluate("() => MathJax.startup.promise")
            assert page.locator("mjx-container").count() > 0, "math was not typeset"
            assert page.locator("mjx-merror").count() == 0, "MathJax reported errors"
        text = page.locator("article").inner_text()
        for raw in ("$$", "\\begin{", "\\frac", "\\("):
            assert raw not in text, f"raw TeX {raw!r} left on the page"
        # every image loads
        broken = page.evaluate(
            "() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        assert not broken, f"images that did not load: {broken}"
        # internal links resolve: pages exist and in-page anchors exist
        root = html_root
        links = page.evaluate("() => Array.from(document.querySelectorAll('article a[href]')).map(a => a.href)")
        for href in links:
            u = urlparse(href)
            if u.hostname not in ("127.0.0.1", "localhost"):
                continue
            target = root / u.path.lstrip("/")
            assert target.exists(), f"broken link {href}"
            if u.fragment and target.suffix == ".html" and target.name == Path(urlparse(page.url).path).name:
                assert page.locator(f"[id='{u.fragment}']").count() > 0, f"missing anchor #{u.fragment}"
        # citations resolved (sphinxcontrib-bibtex renders unresolved ones as bold '??' or the key)
        assert "[?]" not in text and "??" not in text
        assert not external, f"requests left the machine: {external[:3]}"
        assert not failed, f"failed requests: {failed[:5]}"
        assert not errors, f"JavaScript errors: {errors[:3]}"
        if name.startswith("book/0"):
            shots = paths.build_dir() / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / (Path(name).stem + ".png")), full_page=False)


def test_claims_appendix_all_pass(browser, server):
    with open_page(browser, urljoin(server, "book/appendix-claims.html")) as (page, *_):
        text = page.locator("article").inner_text()
        assert "✗" not in text
        rows = page.locator("article table tbody tr")
        assert rows.count() > 0
        assert text.count("✓") == rows.count()


# ---------------------------------------------------------------------------------------------------
# Accessibility: axe-core over every page of the built site

#: impacts that fail the audit: all of axe's four (the last minor one, focus-order-semantics on the
#: theme's scrolling tables, is repaired by _static/ib-a11y.js); a rule could be reported instead of
#: failed by leaving its impact out here
FAILING = ("minor", "moderate", "serious", "critical")
#: nodes left out of the audit, as {CSS selector: reason}. Only for third-party markup that the book
#: cannot change; fix everything else (theme settings, _static/ib.css and ib-a11y.js, lib.book.sphinxext).
EXCLUDED: dict[str, str] = {}

#: axe.run over the whole document (less EXCLUDED), with axe's experimental rules switched on as well
#: (label-content-name-mismatch, WCAG 2.5.3, is one); returns one record per rule violated
_AXE_RUN = """async ([exclude, only]) => {
  const rules = {};
  for (const r of axe.getRules(['experimental'])) rules[r.ruleId] = {enabled: true};
  const options = only.length ? {resultTypes: ['violations'], runOnly: {type: 'rule', values: only}}
                              : {resultTypes: ['violations'], rules};
  const context = exclude.length ? {exclude: exclude.map(s => [s])} : document;
  const res = await axe.run(context, options);
  return res.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary.split('\\n').slice(1).join(' ').trim())}));
}"""


@pytest.fixture(scope="module")
def axe_script():
    try:
        from axe_playwright_python.base import AXE_SCRIPT
    except ImportError as exc:
        _cannot_run(f"the axe-playwright-python package is missing ({exc})")
    return AXE_SCRIPT


def audit(page, axe_script: str, only: tuple[str, ...] = ()) -> list[dict]:
    """axe-core's violations on the page as it stands (after MathJax has typeset it): a list of
    ``{id, impact, help, nodes}``; ``only`` restricts the audit to those rule ids."""
    if page.evaluate("() => typeof MathJax !== 'undefined' && !!MathJax.startup"):
        page.evaluate("() => MathJax.startup.promise")
    page.evaluate(axe_script)
    return page.evaluate(_AXE_RUN, [list(EXCLUDED), list(only)])


def site_pages(root: Path) -> list[str]:
    """Every HTML page of the built site (not the theme's and Sphinx's own files under ``_*``)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(root).parts[:-1]))


def summarize(found: dict[str, list[dict]]) -> list[str]:
    """One line per (rule, impact): how many nodes on how many pages, and which pages."""
    by_rule: dict[tuple[str, str], list] = {}
    for name, violations in found.items():
        for v in violations:
            entry = by_rule.setdefault((v["id"], v["impact"]), [0, []])
            entry[0] += len(v["nodes"])
            entry[1].append(name)
    return [f"{rule} ({impact}): {n} node(s) on {len(pages)} page(s): {', '.join(pages)}"
            for (rule, impact), (n, pages) in sorted(by_rule.items())]


def test_every_page_accessible(browser, server, html_root, axe_script):
    pages = site_pages(html_root)
    assert set(_pages()) <= set(pages), "the audit did not find every page the other tests read"
    t0 = time.perf_counter()
    found: dict[str, list[dict]] = {}
    for name in pages:
        with open_page(browser, urljoin(server, name)) as (page, *_):
            found[name] = audit(page, axe_script)
            # readers may choose (or their system may prefer) the theme's dark mode: its colours
            # are html[data-theme=dark] rules, so the loaded page is switched and checked again
            # the theme animates its colours: without this, axe could measure a colour mid-transition
            # (seen: contrast 1.04 against a grey halfway between the two backgrounds)
            page.add_style_tag(content="*, *::before, *::after { transition: none !important; "
                                       "animation: none !important; }")
            page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
            found[f"{name} (dark)"] = audit(page, axe_script, only=("color-contrast",))
    report = paths.build_dir() / "accessibility.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"pages": pages, "seconds": round(time.perf_counter() - t0, 1),
                                  "excluded": EXCLUDED, "violations": found}, indent=1))
    serious = {k: [v for v in vs if v["impact"] in FAILING] for k, vs in found.items()}
    lesser = {k: [v for v in vs if v["impact"] not in FAILING] for k, vs in found.items()}
    if any(lesser.values()):
        warnings.warn("axe-core, moderate and minor (reported, not failed):\n  "
                      + "\n  ".join(summarize(lesser)) + f"\n  details: {report}", stacklevel=1)
    details = [f"  {name}: {v['id']} ({v['impact']}, {v['help']}): {node}"
               for name, vs in serious.items() for v in vs for node in v["nodes"][:5]]
    assert not details, ("axe-core found serious or critical violations:\n  "
                         + "\n  ".join(summarize(serious)) + "\n" + "\n".join(details))


# The audit must be able to fail: run it on small pages with known faults, and on their repairs.

_PAGE = """<!doctype html><html lang="en"><head><title>probe</title></head>
<body><main><h1>Probe</h1>{}</main></body></html>"""


def _audit_html(browser, axe_script, body: str) -> list[dict]:
    page = browser.new_page()
    try:
        page.set_content(_PAGE.format(body))
        return audit(page, axe_script)
    finally:
        page.close()


@pytest.mark.parametrize("fault, faulty, repaired", [
    (("color-contrast", "serious"), '<p style="color:#aaaaaa;background:#ffffff">faint text</p>',
     '<p style="color:#222832;background:#ffffff">dark text</p>'),
    (("label-content-name-mismatch", "serious"), '<button aria-label="Find">Search Ctrl+K</button>',
     "<button>Search Ctrl+K</button>"),
], ids=["low-contrast", "name-hides-visible-label"])
def test_audit_reports_a_known_fault_and_passes_its_repair(browser, axe_script, fault, faulty, repaired):
    assert fault in [(v["id"], v["impact"]) for v in _audit_html(browser, axe_script, faulty)]
    assert _audit_html(browser, axe_script, repaired) == []


def test_scrolling_table_gets_a_role(browser, axe_script):
    """The theme makes a table container that scrolls focusable without a role; the book's script
    (_static/ib-a11y.js, as every page loads it) names it as a region after its caption, numbering a
    second one with the same caption (landmarks need distinct names)."""
    table = ('<div class="pst-scrollable-table-container" tabindex="0" style="width:120px;overflow:auto">'
             '<table><caption>Wide table</caption><tr><th>a</th><td style="min-width:600px">x</td></tr>'
             '</table></div>') * 2
    script = (paths.root() / "_static" / "ib-a11y.js").read_text()
    fault = [(v["id"], v["impact"]) for v in _audit_html(browser, axe_script, table)]
    assert ("focus-order-semantics", "minor") in fault
    page = browser.new_page()
    try:
        page.set_content(_PAGE.format(f"<script>{script}</script>" + table))
        names = [c.get_attribute("aria-label") for c in page.locator(".pst-scrollable-table-container").all()]
        assert names == ["Wide table: table, scrolls sideways", "Wide table: table, scrolls sideways 2"]
        assert audit(page, axe_script) == []
    finally:
        page.close()


def test_empty_pandas_headers_are_labelled(browser, axe_script):
    """A DataFrame with a named two-level index, as pandas writes it, has empty header cells that axe
    reports; after :func:`lib.book.sphinxext.label_empty_headers` it has none, and looks the same."""
    import pandas as pd

    from lib.book.sphinxext import label_empty_headers

    index = pd.MultiIndex.from_tuples([("a", "x"), ("a", "y"), ("b", "x")], names=["study", "parameter"])
    raw = pd.DataFrame({"value": [1, 2, 3], "error": [0.1, 0.2, 0.3]}, index=index).to_html()
    style = "<style>.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0,0,0,0)}</style>"
    page = browser.new_page()
    try:
        page.set_content(_PAGE.format(style + raw))
        before, box_before = audit(page, axe_script), page.locator("table").bounding_box()
        page.set_content(_PAGE.format(style + label_empty_headers(raw)))
        after, box_after = audit(page, axe_script), page.locator("table").bounding_box()
    finally:
        page.close()
    assert "empty-table-header" in [v["id"] for v in before]
    assert after == []
    assert box_before == box_after  # the labels take no room


def test_empty_header_labels_name_each_cell():
    """The corner above a named index takes the index's name, a cell of the index-names row takes
    its column's label, an unnamed index's corner "index"; the body and full headers are untouched."""
    import pandas as pd

    from lib.book.sphinxext import label_empty_headers

    hidden = '<th><span class="visually-hidden">{}</span></th>'
    named = pd.DataFrame({"value": [1.5]}, index=pd.Index(["a"], name="study")).to_html()
    fixed = label_empty_headers(named)
    assert "<th></th>" in named and "<th></th>" not in fixed
    assert hidden.format("study") in fixed and hidden.format("value") in fixed
    assert fixed.split("</thead>")[1] == named.split("</thead>")[1]
    plain = pd.DataFrame({"fast": [3]}, index=["n"]).to_html()
    assert hidden.format("index") in label_empty_headers(plain)
    full = pd.DataFrame({"fast": [3]}).to_html(index=False)
    assert label_empty_headers(full) == full
