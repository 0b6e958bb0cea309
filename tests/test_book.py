"""The whole book builds (warnings are errors: broken references, missing citations and missing
figures fail the build) and the rendered HTML is complete and self-contained."""

import json
import re

import pytest

from lib.book import chapters

pytestmark = pytest.mark.book


def _pages(html):
    return {p.relative_to(html).as_posix(): p.read_text() for p in html.rglob("*.html")}


def test_every_chapter_and_appendix_is_rendered(book_html):
    pages = _pages(book_html)
    for stem in chapters.chapters():
        page = pages.get(f"book/{stem}.html")
        assert page is not None, f"{stem} was not rendered"
        assert "How this page was computed" in page and "profile <strong>fast</strong>" in page
        assert "&lt;Figure size" not in page, f"{stem}: a figure was rendered as text"
    for name in ("intro", "appendix-claims", "appendix-results", "appendix-reproducibility", "appendix-figures", "bibliography"):
        assert f"book/{name}.html" in pages


def test_every_figure_has_files_provenance_and_a_numbered_caption(book_html):
    pages = _pages(book_html)
    for stem in chapters.chapters():
        figdir = book_html / "figures" / stem
        records = sorted(figdir.glob("*.json"))
        assert records, f"{stem} has no figures"
        page = pages[f"book/{stem}.html"]
        numbered = len(re.findall(r'class="caption-number"', page))
        assert numbered >= len(records), f"{stem}: {len(records)} figures, {numbered} numbered captions"
        for rec_path in records:
            rec = json.loads(rec_path.read_text())
            for key in ("chapter", "figure", "params", "profile", "device", "seed", "commit", "libraries"):
                assert key in rec, f"{rec_path.name} lacks {key}"
            assert (figdir / rec["files"]["png"]["file"]).exists()
            assert (figdir / rec["files"]["pdf"]["file"]).exists()


def test_claims_appendix_shows_every_claim_passing(book_html):
    page = (book_html / "book" / "appendix-claims.html").read_text()
    data = json.loads((book_html / "claims.json").read_text())
    total = sum(c["n_claims"] for c in data["chapters"].values())
    assert total > 0
    assert f"{total} of {total} claims pass" in page
    assert "✗" not in page


def test_no_external_resources(book_html):
    """Offline and archivable: no page loads scripts, styles, fonts or images from the network."""
    bad = re.compile(r'<(?:script|link|img)[^>]+(?:src|href)="(?:https?:)?//', re.I)
    for name, page in _pages(book_html).items():
        hits = bad.findall(page)
        assert not hits, f"{name} loads external resources: {hits[:3]}"
    assert (book_html / "_static" / "mathjax" / "tex-mml-chtml.js").exists()


def test_every_figure_offers_citations_and_its_data(book_html):
    """Under each figure: downloads (PNG, PDF, CSV of the plotted data, provenance) and a citation with
    the figure's number; the list of figures links every figure."""
    figures_page = (book_html / "book" / "appendix-figures.html").read_text()
    for stem in chapters.chapters():
        page = (book_html / "book" / f"{stem}.html").read_text()
        recs = sorted((book_html / "figures" / stem).glob("*.json"))
        assert page.count('class="ib-figure-links"') == len(recs), f"{stem}: a figure lacks its links"
        assert page.count("@misc{ibbook-") == len(recs)
        num = int(stem[:2])
        titles = re.findall(r"title += \{\{Fig\. (\d+)\.(\d+):", page)
        assert len(titles) == len(recs) and all(int(a) == num for a, _ in titles), f"{stem}: {titles}"
        for rec_path in recs:
            rec = json.loads(rec_path.read_text())
            csv = (rec_path.parent / rec["files"]["csv"]["file"]).read_text().splitlines()
            assert csv[0] == "panel,series,kind,x,y" and len(csv) > 1, f"{rec_path.name}: no plotted data"
            assert f"fig-ch{stem[:2]}-{rec['figure']}" in figures_page


def test_without_a_repository_url_there_are_no_launch_buttons(book_html):
    """The checkout names no public repository: no Binder/Colab buttons or links, and no error."""
    from lib.book import launch

    assert launch.repository()[0] == ""
    for stem in chapters.chapters():
        page = (book_html / "book" / f"{stem}.html").read_text()
        assert launch.BINDERHUB_URL not in page and launch.COLAB_URL not in page, stem
        assert "launch on Binder" not in page


def test_every_chapter_has_binder_and_colab_launch_links(launch_html, book_html):
    """With a repository URL, the theme's launch buttons and the banner's links open the chapter's
    twin in the repository; that build went to its own folder, not over the reader's book."""
    from conftest import LAUNCH_REPOSITORY

    from lib.book import launch

    assert launch_html != book_html
    assert LAUNCH_REPOSITORY not in (book_html / "book" / f"{chapters.chapters()[0]}.html").read_text()
    for stem in chapters.chapters():
        page = (launch_html / "book" / f"{stem}.html").read_text()
        ln = launch.links(stem, LAUNCH_REPOSITORY, "main")
        for kind in ("binder", "colab"):
            href = ln[kind].replace("&", "&amp;")
            assert page.count(f'href="{href}"') >= 2, f"{stem}: no {kind} button and banner link ({href})"


def test_jupyter_book_on_the_checkout_stops_with_one_clear_line(book_html):
    """``jupyter-book build .`` (the ecosystem's own command) would render the chapters unexecuted;
    it stops before rendering anything, names the project's command, and leaves the built book alone."""
    import subprocess
    import sys
    from pathlib import Path

    from lib.book import paths, sphinxext

    index = book_html / "index.html"
    before = index.stat().st_mtime_ns
    jb = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run([str(jb), "build", "."], cwd=paths.root(), capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert sphinxext.NOT_STAGED in out and "python3 tasks.py book" in out
    assert "Traceback" not in out and "glue" not in out
    assert index.stat().st_mtime_ns == before
