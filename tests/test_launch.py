"""Binder/Colab launch links and the .ipynb twins they open (lib.launch)."""

import shutil

import jupytext
import nbformat
import pytest

from lib.book import chapters, launch, paths

URL = "https://github.com/example/implicit-bias-book"


def test_links_for_a_github_repository(monkeypatch):
    monkeypatch.delenv("IB_REPOSITORY_URL", raising=False)
    ln = launch.links("01-single-neuron", URL, "main")
    assert ln == {
        "binder": "https://mybinder.org/v2/gh/example/implicit-bias-book/main"
                  "?urlpath=lab/tree/book/01-single-neuron.ipynb",
        "colab": "https://colab.research.google.com/github/example/implicit-bias-book/blob/main/"
                 "book/01-single-neuron.ipynb",
    }
    assert launch.links("01-single-neuron", URL + ".git", "v1")["colab"].endswith("/blob/v1/book/01-single-neuron.ipynb")


def test_no_url_means_no_links_and_a_bad_url_is_refused(monkeypatch):
    monkeypatch.delenv("IB_REPOSITORY_URL", raising=False)
    assert launch.repository()[0] == ""  # the committed configuration: no public repository yet
    assert launch.links("01-single-neuron") == {}
    monkeypatch.setenv("IB_REPOSITORY_URL", "https://gitlab.com/a/b")
    with pytest.raises(ValueError, match="github.com/ORG/REPO"):
        launch.repository()


def test_the_committed_twins_match_the_configuration():
    """CI guard: with a repository URL the twins exist and match the sources; without one there are none."""
    assert launch.check_twins() == []


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    root = paths.root()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "book", tmp_path / "book", ignore=shutil.ignore_patterns("*.ipynb", "_generated"))
    (tmp_path / "lib").mkdir()
    monkeypatch.setenv("IB_ROOT", str(tmp_path))
    return tmp_path


def test_twins_are_written_checked_and_removed(scratch_root, monkeypatch):
    monkeypatch.setenv("IB_REPOSITORY_URL", URL)
    stems = chapters.chapters()
    assert len(launch.check_twins()) == len(stems)  # all missing
    written = launch.write_twins()
    assert [p.stem for p in written] == stems and launch.check_twins() == []

    nb = nbformat.read(written[0], as_version=4)
    assert nb.cells[0].metadata["tags"] == [launch.SETUP_TAG]
    assert f"git+{URL}@main" in nb.cells[0].source
    src = jupytext.read(scratch_root / "book" / f"{stems[0]}.md")
    assert [c.source for c in nb.cells[1:]] == [c.source for c in src.cells]
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "the papermill parameters cell keeps its tag"

    md = scratch_root / "book" / f"{stems[0]}.md"
    md.write_text(md.read_text() + "\nOne more sentence.\n")
    assert launch.check_twins() == [f"{stems[0]}.ipynb: out of date with {stems[0]}.md (run `python -m lib notebooks`)"]

    monkeypatch.delenv("IB_REPOSITORY_URL")
    assert len(launch.check_twins()) == len(stems)  # twins without a URL are an error
    launch.write_twins()
    assert not list((scratch_root / "book").glob("*.ipynb"))
