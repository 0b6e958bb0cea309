"""The pages as a reader meets them: claim cells folded to one line that links to Appendix A and back,
the parameter listing collapsed, Appendix A's downloads and filter data, the List of results. Staging
transforms are tested on a tiny notebook with a real claims record; each check is seen failing on a
broken input. The last tests read the built book (marked ``book``)."""

import copy
import csv
import io
import json
import re
from pathlib import Path

import nbformat
import pytest

from lib.book import chapters, paths, site
from lib.book.claims import ClaimRegistry

STEM = "01-x"


def _claims_and_notebook():
    """A claims record made by the real registry, and a notebook whose claim cell printed its lines."""
    reg = ClaimRegistry(STEM, {}, write=False)
    a = reg.check("ch01-a", "A holds", paper="k", where="main result", source="paper", measured=0.5, upper=1.0,
                  control=("the wrong ingredient", 3.0), quiet=True)
    b = reg.check("ch01-b", "B is an identity", paper="k", where="book's derivation", source="book",
                  measured=0.0,
                  expected=0.0, tol=1e-12, kind="identity", quiet=True)
    c = reg.check("ch01-c", "C holds too", paper="k", where="numerics (the solver)",
                  source="numerics", measured=2.0, lower=1.0,
                  control=("another wrong ingredient", 0.5), quiet=True)
    v4 = nbformat.v4
    cells = [
        v4.new_code_cell('profile = "fast"  # a comment', metadata={"tags": ["parameters"]}),
        v4.new_code_cell("from lib.studies import ch01\nP = ch01.params(profile)\nch01.describe(P)",
                         metadata={"tags": ["hide-input"]},
                         outputs=[v4.new_output("execute_result", data={"text/plain": "lr 0.1"}, execution_count=1)]),
        v4.new_markdown_cell("## A section"),
        v4.new_code_cell('x = 1\nctx.claim("ch01-a", "A holds",\n          where="main result")\n'
                         'ctx.claim("ch01-b", "B is an identity", kind="identity")',
                         outputs=[v4.new_output("stream", name="stdout", text=a.summary() + "\n" + b.summary() + "\n")]),
        v4.new_code_cell("print('3 runs')\nctx.claim('ch01-c', 'C holds too')",
                         outputs=[v4.new_output("stream", name="stdout", text="3 runs\n" + c.summary() + "\n")]),
    ]
    return reg.to_json(), v4.new_notebook(cells=cells)


def _html(cell):
    return "".join(o["data"]["text/html"] for o in cell.outputs if o["output_type"] == "display_data")


def test_claim_cells_fold_to_one_line_that_links_to_appendix_a():
    record, nb = _claims_and_notebook()
    assert site.fold_claim_cells(nb, STEM, record) == 3
    cell = nb.cells[3]
    assert "hide-input" in cell.metadata["tags"]
    assert [o["output_type"] for o in cell.outputs] == ["display_data"]  # the [PASS] lines are gone
    html = _html(cell)
    assert "✓ checked: 2 claims (1 of them an identity)" in html
    assert html.count("<details>") == 1 and html.count("<li>") == 2
    for cid in ("ch01-a", "ch01-b"):
        assert f'<span id="at-{cid}"></span>' in html
        assert f'href="appendix-claims.html#claim-{cid}"' in html
    assert "Measured m = 0.5" in html and "the wrong ingredient" in html and "fails, as it must" in html
    assert "[PASS] ch01-a" in cell.outputs[0]["data"]["text/plain"]  # the plain fallback keeps the lines
    # what else a claim cell prints stays, and the line says "1 claim"
    last = nb.cells[4]
    assert [o["output_type"] for o in last.outputs] == ["stream", "display_data"]
    assert last.outputs[0]["text"] == "3 runs\n" and "✓ checked: 1 claim<" in _html(last)
    # cells without claims are untouched
    assert nb.cells[0].metadata["tags"] == ["parameters"]


def test_folding_stops_on_an_inconsistent_record():
    record, nb = _claims_and_notebook()
    broken = copy.deepcopy(record)
    broken["claims"] = [c for c in broken["claims"] if c["id"] != "ch01-b"]
    with pytest.raises(ValueError, match="'ch01-b' is checked in the cell but missing from the claims record"):
        site.fold_claim_cells(copy.deepcopy(nb), STEM, broken)
    broken = copy.deepcopy(record)
    broken["claims"][0]["passed"] = False
    with pytest.raises(ValueError, match="'ch01-a' did not pass"):
        site.fold_claim_cells(copy.deepcopy(nb), STEM, broken)
    broken = copy.deepcopy(record)
    broken["claims"][0]["measured"] = 0.25  # the record is not what the cell printed
    with pytest.raises(ValueError, match="does not show claim 'ch01-a' as its record has it"):
        site.fold_claim_cells(copy.deepcopy(nb), STEM, broken)
    broken = copy.deepcopy(record)
    broken["claims"].append({**broken["claims"][0], "id": "ch01-z"})
    with pytest.raises(ValueError, match=r"\['ch01-z'\] are in the claims record but no cell checks them"):
        site.fold_claim_cells(copy.deepcopy(nb), STEM, broken)
    computed = copy.deepcopy(nb)
    computed.cells[4].source = "ctx.claim(name, 'C holds too')"
    with pytest.raises(ValueError, match="not a string literal"):
        site.fold_claim_cells(computed, STEM, record)
    with pytest.raises(ValueError, match="missing from the claims record"):
        site.fold_claim_cells(copy.deepcopy(nb), STEM, {})  # no record at all


def test_parameter_listing_is_collapsed_and_visible_code_shrinks():
    record, nb = _claims_and_notebook()
    before = site.visible_code_lines(nb)
    assert site.fold_parameter_listing(nb)
    assert nb.cells[1].metadata["tags"] == ["hide-input", "hide-output"]
    site.fold_claim_cells(nb, STEM, record)
    assert (before, site.visible_code_lines(nb)) == (1 + 4 + 2, 1)
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("P = params()\nprint(P)")])
    assert not site.fold_parameter_listing(other)  # no describe(P): nothing collapsed
    assert "tags" not in other.cells[0].metadata


def test_every_claim_states_its_source_and_the_appendix_files_it_there():
    record, _ = _claims_and_notebook()
    assert [site.claim_source(c) for c in record["claims"]] == ["paper", "book", "numerics"]
    reg = ClaimRegistry(STEM, {}, write=False)
    with pytest.raises(TypeError, match="source"):  # no default: the chapter must say whose statement it is
        reg.check("x", "s", paper="k", where="w", measured=0.0, upper=1.0, kind="identity", quiet=True)
    with pytest.raises(ValueError, match="invalid source='book derivation'"):
        reg.check("x", "s", paper="k", where="w", source="book derivation", measured=0.0, upper=1.0,
                  kind="identity", quiet=True)
    old = {**record["claims"][0]}
    del old["source"]  # a record written before claims stated their source
    with pytest.raises(ValueError, match="re-execute its chapter"):
        site.claim_source(old)


def test_intro_status_splits_claims_by_source():
    from lib.book.papers import papers

    record, _ = _claims_and_notebook()
    stem = papers()[0].chapter
    run = {"chapter": stem, "n_claims": 3, "n_passed": 3, "n_evidence": 2, "n_controlled": 2, "n_identity": 1}
    row = site.status_markdown([run], {stem: record}).splitlines()[2]
    assert "| ✓ 3/3 | 1 / 1 / 1 | 2 of 2 | 1 |" in row
    record["claims"][0]["source"] = "book"  # the split follows each claim's own source
    row = site.status_markdown([run], {stem: record}).splitlines()[2]
    assert "| 0 / 2 / 1 |" in row


def test_appendix_rows_carry_anchors_back_links_and_filter_data():
    record, _ = _claims_and_notebook()
    rec = {"chapter": STEM, "profile": "fast", "device_name": "cpu", "commit": "abc"}
    md = site.claims_markdown([rec], {STEM: record})
    for c in record["claims"]:
        assert f'<span id="claim-{c["id"]}" class="ib-claim" data-chapter="{STEM}"' in md
        assert f'href="{STEM}.html#at-{c["id"]}"' in md
    assert 'data-kind="identity" data-source="book"' in md and 'data-source="numerics"' in md
    assert 'data-kind="evidence" data-source="paper"' in md
    assert '<form id="ib-claims-filter" class="ib-claims-filter" hidden>' in md
    assert f'<option value="{STEM}">' in md
    assert 'href="../claims.csv"' in md and 'href="../claims.json"' in md
    assert "1 name a part of a paper, 1 the book's own derivation" in md
    # the filter's raw HTML is one block: a blank line inside would end it and print the rest as text
    form = md[md.index("<form"):md.index("</form>")]
    assert "\n\n" not in form


def test_claims_csv_has_one_row_per_claim():
    record, _ = _claims_and_notebook()
    rows = list(csv.DictReader(io.StringIO(site.claims_csv({STEM: record, "02-y": {}}))))
    assert [r["id"] for r in rows] == ["ch01-a", "ch01-b", "ch01-c"]
    assert rows[0]["control"] == "the wrong ingredient" and rows[0]["control_passed"] == "False"
    assert rows[1]["kind"] == "identity" and rows[1]["control"] == ""
    assert rows[2]["chapter_page"] == f"book/{STEM}.html#at-ch01-c"
    assert tuple(rows[0]) == site.CSV_COLUMNS


def _book(tmp_path, monkeypatch, source):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "99-x.md").write_text(source)
    monkeypatch.setenv("IB_ROOT", str(tmp_path))


RESULTS_SOURCE = """# X

````{prf:theorem} Impossibility (paper)
:label: thm-ch99-a

Text.
````

````{prf:proof}
Proof.
````

:::{prf:lemma} A lemma (book's derivation)
:label: lem-ch99-b
:::

```{prf:remark}
:label: rem-ch99-c
```

```{prf:proposition} Untagged
:class: dropdown
:label: prop-ch99-d
```
"""


def test_list_of_results_is_read_from_the_sources(tmp_path, monkeypatch):
    _book(tmp_path, monkeypatch, RESULTS_SOURCE)
    md = site.results_markdown(["99-x"])
    rows = re.findall(r"^\* - \{prf:ref\}`([\w-]+)`\n  - (.*)\n  - (.*)$", md, flags=re.M)
    assert rows == [("thm-ch99-a", "Impossibility (paper)", "paper"),
                    ("lem-ch99-b", "A lemma (book's derivation)", "book's derivation"),
                    ("rem-ch99-c", "(untitled)", "not marked"),
                    ("prop-ch99-d", "Untagged", "not marked")]
    assert "{doc}`99-x`" in md and "prf:proof" not in md


def test_a_result_without_a_label_stops_the_list(tmp_path, monkeypatch):
    _book(tmp_path, monkeypatch, RESULTS_SOURCE.replace(":label: lem-ch99-b\n", ""))
    with pytest.raises(ValueError, match=r"line 13 \(lemma\).*label every result"):
        site.results_markdown(["99-x"])


def test_staged_site_writes_one_csv_and_json_row_per_claim(tmp_path, monkeypatch):
    """stage() on a fake execution of the first chapter: claims.csv and claims.json next to the pages,
    one row per claim, the chapter's claim cell folded, the List of results and the filter script."""
    from lib.book.execute import Execution

    monkeypatch.setenv("IB_BUILD", str(tmp_path / "_build"))
    stem = chapters.chapters()[0]
    record, nb = _claims_and_notebook()
    record["chapter"] = stem
    ex = tmp_path / "ex"
    ex.mkdir()
    nbformat.write(nb, ex / f"{stem}.ipynb")
    (ex / f"{stem}.claims.json").write_text(json.dumps(record))
    rec = {"chapter": stem, "profile": "fast", "device_name": "cpu", "seed": 0, "commit": "abc",
           "wall_s": 1.0, "started_utc": "now", "n_passed": 3, "n_claims": 3}
    staged = site.stage("fast", [Execution(stem, "fast", ex / f"{stem}.ipynb", rec, True)],
                        site=tmp_path / "site", repository=("", "main"))
    rows = list(csv.DictReader((staged / "_extra" / "claims.csv").open()))
    data = json.loads((staged / "_extra" / "claims.json").read_text())
    assert [r["id"] for r in rows] == [c["id"] for c in data["chapters"][stem]["claims"]] == ["ch01-a", "ch01-b", "ch01-c"]
    assert data["chapters"][stem]["claims"][2]["source"] == "numerics"
    out = nbformat.read(staged / "book" / f"{stem}.ipynb", as_version=4)
    assert "✓ checked: 2 claims" in json.dumps(out.cells[4].outputs, ensure_ascii=False)
    assert "{prf:ref}" in (staged / "book" / "_generated" / "results.md").read_text()
    assert "ib-claims-filter" in (staged / "_static" / "ib-claims.js").read_text()


# ---- the built book ---------------------------------------------------------------------------------


def _ids(page: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page))


def check_built_claims(html: Path) -> int:
    """Appendix A and the chapters link to each other, and claims.csv/claims.json have one row per
    claim; returns the number of claims. Usable on any rendered site."""
    data = json.loads((html / "claims.json").read_text())
    ids = [c["id"] for cs in data["chapters"].values() for c in cs["claims"]]
    rows = list(csv.DictReader((html / "claims.csv").open()))
    assert ids and [r["id"] for r in rows] == ids, "claims.csv and claims.json disagree"
    assert len(set(ids)) == len(ids)
    appendix = (html / "book" / "appendix-claims.html").read_text()
    for target in re.findall(r'href="\.\./(claims\.(?:csv|json))"', appendix) or ["none"]:
        assert (html / target).exists(), f"Appendix A links to {target}, which is not in the site"
    assert 'href="../claims.csv"' in appendix and 'href="../claims.json"' in appendix
    assert all(f'id="claim-{i}"' in appendix for i in ids)
    links = re.findall(r'href="([\w-]+)\.html#(at-[^"]+)"', appendix)
    assert len(links) == len(ids), "an appendix row has no link to its chapter"
    pages = {}
    for page, anchor in links:
        pages.setdefault(page, _ids((html / "book" / f"{page}.html").read_text()))
        assert anchor in pages[page], f"Appendix A links to {page}.html#{anchor}, which does not exist"
    for stem in data["chapters"]:
        page = (html / "book" / f"{stem}.html").read_text()
        back = re.findall(r'href="appendix-claims\.html#(claim-[^"]+)"', page)
        assert back and set(back) <= _ids(appendix)
        assert "[PASS]" not in page and "checked: " in page
    return len(ids)


def check_built_results(html: Path) -> int:
    """The List of results links every labelled block of the chapters; returns their number."""
    page = (html / "book" / "appendix-results.html").read_text()
    n = 0
    for stem in chapters.chapters():
        for b in site._prf_blocks((paths.root() / "book" / f"{stem}.md").read_text()):
            assert f'href="{stem}.html#{b["label"]}"' in page, f"{b['label']} is not in the List of results"
            n += 1
    return n


@pytest.mark.book
def test_built_appendix_and_chapters_link_each_other(book_html):
    assert check_built_claims(book_html) > 100


@pytest.mark.book
def test_built_list_of_results_links_every_result(book_html):
    assert check_built_results(book_html) > 20
