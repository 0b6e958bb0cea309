"""The execution and build machinery, without executing chapters."""

import pytest

from lib.book import chapters, execute, paths, site


def test_chapters_follow_the_toc():
    stems = chapters.chapters()
    assert stems, "no chapters found"
    assert stems == sorted(stems)
    assert all(s[:2].isdigit() for s in stems)


def test_resolve_aliases():
    first = chapters.chapters()[0]
    num = first.split("-")[0]
    for alias in (f"ch{num}", num, str(int(num)), first):
        assert chapters.resolve([alias]) == [first]
    assert chapters.resolve(["all"]) == chapters.chapters()
    with pytest.raises(SystemExit, match="unknown chapter"):
        chapters.resolve(["ch99"])


def test_claims_markdown_lists_every_claim_with_numbers():
    rec = {"chapter": "01-x", "profile": "fast", "device_name": "cpu", "commit": "abc"}
    cs = {"01-x": {"n_claims": 2, "n_passed": 2, "claims": [
        {"id": "a", "statement": "s|t", "paper": "k", "where": "w", "source": "paper", "measured": 1.5e-12,
         "criterion": "m <= 1e-10", "passed": True, "values": {"g=1": 2.0}},
        {"id": "b", "statement": "u", "paper": "k", "where": "w", "source": "numerics", "measured": 3.0,
         "criterion": "|m - 3| <= 0", "passed": True, "values": {}},
    ]}}
    md = site.claims_markdown([rec], cs)
    assert "**2 of 2 claims pass**" in md
    assert "1.5e-12" in md and "g=1 = 2" in md and "s|t" in md
    assert md.count("✓") == 2


def test_execute_rejects_bad_profile():
    with pytest.raises(ValueError, match="invalid profile"):
        execute.execute(chapters.chapters()[0], profile="huge")


def test_archive_and_recorded_markdown(tmp_path, monkeypatch):
    """`python -m lib archive` copies run and claim records into records/<profile>/, and the appendix
    table lists them in reading order and names the chapters never run at that profile."""
    import json
    import shutil

    from lib.book import chapters, execute, paths, site

    root = tmp_path / "repo"
    root.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(paths.root() / name, root / name)
    shutil.copytree(paths.root() / "book", root / "book", ignore=shutil.ignore_patterns("*.ipynb", "_generated"))
    (root / "lib").mkdir()
    monkeypatch.setenv("IB_ROOT", str(root))
    monkeypatch.setenv("IB_BUILD", str(root / "_build"))
    stems = chapters.chapters()
    assert site.recorded_markdown("full").startswith("No `full` execution")
    ex = paths.executed_dir("full")
    ex.mkdir(parents=True)
    rec = dict(chapter=stems[1], profile="full", device_name="cpu (2 cores)", commit="abc123", code_version="f00",
               started_utc="2026-11-23 18:00 UTC", wall_s=12.3, n_claims=3, n_passed=3)
    (ex / f"{stems[1]}.run.json").write_text(json.dumps(rec))
    (ex / f"{stems[1]}.claims.json").write_text("{}")
    written = execute.archive("full")
    assert sorted(p.name for p in written) == sorted([f"{stems[1]}.run.json", f"{stems[1]}.claims.json"])
    md = site.recorded_markdown("full")
    assert f"{{doc}}`{stems[1]} <{stems[1]}>`" in md and "| 3/3 |" in md and "`abc123`" in md
    assert "Not yet executed at this profile" in md and stems[0] in md.split("Not yet executed")[1]


def test_staged_config_has_launch_buttons_only_with_a_url(tmp_path, monkeypatch):
    """An empty repository URL stages neither the repository nor the theme's launch buttons (the theme
    fails on an empty URL); a URL stages both. Either way the site carries the staged marker."""
    import yaml

    monkeypatch.setenv("IB_BUILD", str(tmp_path / "_build"))
    staged = site.stage("fast", [], site=tmp_path / "a", repository=("", "main"))
    cfg = yaml.safe_load((staged / "_config.yml").read_text())
    assert "launch_buttons" not in cfg and "repository" not in cfg
    assert cfg["sphinx"]["config"]["ib_staged"] is True
    url = "https://github.com/example/implicit-bias-book"
    staged = site.stage("fast", [], site=tmp_path / "b", repository=(url, "main"))
    cfg = yaml.safe_load((staged / "_config.yml").read_text())
    assert cfg["repository"]["url"] == url and cfg["launch_buttons"]["colab_url"]


def test_execution_key_depends_on_the_thread_setting(monkeypatch):
    stem = chapters.chapters()[0]
    p = {"profile": "fast", "device": "auto", "seed": 0}
    assert execute._key(stem, p, "1") != execute._key(stem, p, "2")
    monkeypatch.delenv("IB_THREADS", raising=False)
    assert execute.thread_setting() == "chapter default"
    monkeypatch.setenv("IB_THREADS", "2")
    assert execute.thread_setting() == "2"


def test_execute_all_rejects_bad_jobs():
    with pytest.raises(ValueError, match="jobs"):
        execute.execute_all([], jobs=0)


def test_every_chapter_names_its_paper_in_its_front_matter():
    """The paper metadata of the intro's table, the citations and the claims' default paper come from
    each chapter's front matter and references.bib: adding a chapter touches no list elsewhere."""
    from lib.book import papers

    ps = papers.papers()
    assert [p.chapter for p in ps] == chapters.chapters()
    assert all(p.authors and p.title and p.venue[-4:].isdigit() and p.topic for p in ps)
    assert ps[0].authors == "Vardi & Shamir" and ps[0].venue == "COLT 2021"


def test_a_paper_key_missing_from_the_bibliography_is_an_error(tmp_path, monkeypatch):
    import shutil

    from lib.book import papers

    (tmp_path / "book").mkdir()
    shutil.copy("references.bib", tmp_path / "references.bib")
    (tmp_path / "book" / "99-x.md").write_text("---\nbook:\n  paper: nobody2099\n---\n# x\n")
    monkeypatch.setenv("IB_ROOT", str(tmp_path))
    with pytest.raises(KeyError, match="99-x.*nobody2099"):
        papers.paper_of("99-x")


def test_execution_key_covers_the_full_records_a_chapter_quotes(tmp_path, monkeypatch):
    """Chapter 4 glues numbers from its committed paper-scale record: re-archiving it must re-execute."""
    import shutil

    real = paths.root()
    stem = "04-explicit-penalty-adam"
    (tmp_path / "book").mkdir()
    shutil.copy(real / "book" / f"{stem}.md", tmp_path / "book" / f"{stem}.md")
    shutil.copytree(real / "records" / "full", tmp_path / "records" / "full")
    monkeypatch.setattr(paths, "root", lambda: tmp_path)
    p = {"profile": "fast", "device": "auto", "seed": 0}
    before = execute._key(stem, p, "1")
    rec = tmp_path / "records" / "full" / f"{stem}.run.json"
    rec.write_text(rec.read_text().replace('"wall_s"', '"wall_s" ', 1))
    assert execute._key(stem, p, "1") != before
    other = tmp_path / "records" / "full" / "01-single-neuron.run.json"
    first = execute._key(stem, p, "1")
    other.write_text(other.read_text() + " ")  # another chapter's record: no effect
    assert execute._key(stem, p, "1") == first
