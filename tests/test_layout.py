"""The package's layout: the papers' mathematics on the ground floor of ``lib``, the machinery that
runs, records and renders chapters in ``lib.book``; no import circle; cache keys scoped to the code a
study or a chapter can reach (editing a plot or the site recomputes no study)."""

from pathlib import Path

import pytest

from lib.book import chapters, provenance

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"


def _module(f: Path) -> str:
    parts = list(f.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(_module(f) for f in LIB.rglob("*.py"))
GROUND = [m for m in MODULES if m.count(".") == 1 and m not in ("lib.__main__", "lib.book", "lib.plots", "lib.studies")]
STUDIES = [m for m in MODULES if m.startswith("lib.studies.ch") and not m.endswith("_results")]


def _graph() -> dict[str, set[str]]:
    g = {}
    for m in MODULES:
        f = provenance._module_file(m)
        deps = provenance._imports(m, f.read_text(), f.name == "__init__.py")
        g[m] = {d for d in deps if d != m and not m.startswith(d + ".") and d in MODULES}
    return g


def test_no_import_circle():
    g, state, cycles = _graph(), {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(g[m]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in MODULES:
        if m not in state:
            visit(m, [m])
    assert not cycles, f"import circles: {cycles}"


@pytest.mark.parametrize("module", GROUND)
def test_the_mathematics_never_imports_the_machinery(module):
    reach = [f for f in provenance.module_closure([module]) if "book" in f.relative_to(LIB).parts]
    assert not reach, f"{module} reaches the book machinery: {[str(f.relative_to(LIB)) for f in reach]}"


@pytest.mark.parametrize("module", STUDIES)
def test_a_study_key_ignores_plots_and_site(module):
    """A study's cache key hashes what the study can run: never a plot, the site builder or the CLI."""
    reach = {str(f.relative_to(LIB)) for f in provenance.module_closure([module])}
    assert f"studies/{module.rsplit('.', 1)[1]}.py" in reach
    forbidden = {"book/site.py", "book/sphinxext.py", "book/launch.py", "book/cli.py", "book/figures.py",
                 "book/claims.py", "book/chapter.py"}
    assert not reach & forbidden and not any(r.startswith("plots/") for r in reach), sorted(reach)
    # the tables and claim measurements that read a study's results never key the study
    assert not any(r.endswith("_results.py") or r == "studies/tables.py" for r in reach), sorted(reach)


def test_chapter_4_reads_its_results_outside_the_study_key():
    """Chapter 4's paper-scale studies take an hour: its tables and claim measurements live in
    ch04_results, which the chapter's execution key covers and the studies' keys do not."""
    src = (ROOT / "book" / "04-explicit-penalty-adam.md").read_text()
    chapter_reach = {str(f.relative_to(LIB)) for f in provenance.module_closure(provenance.chapter_modules(src))}
    assert {"studies/ch04_results.py", "studies/tables.py"} <= chapter_reach


@pytest.mark.parametrize("stem", chapters.chapters())
def test_an_execution_key_covers_the_chapter_not_the_site(stem):
    src = (ROOT / "book" / f"{stem}.md").read_text()
    reach = {str(f.relative_to(LIB)) for f in provenance.module_closure(provenance.chapter_modules(src))}
    num = stem[:2]
    assert {f"plots/ch{num}.py", f"studies/ch{num}.py", "book/chapter.py", "book/claims.py"} <= reach
    assert not reach & {"book/site.py", "book/sphinxext.py", "book/launch.py", "book/cli.py"}


def test_editing_a_plot_changes_the_execution_key_but_no_study_key(tmp_path, monkeypatch):
    """On a copy of lib: a changed plot module changes the chapter's code version, not the study's."""
    import shutil

    shutil.copytree(LIB, tmp_path / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    monkeypatch.setenv("IB_ROOT", str(tmp_path))
    src = (ROOT / "book" / "01-single-neuron.md").read_text()
    mods = provenance.chapter_modules(src)
    before = provenance.code_version(["lib.studies.ch01"]), provenance.code_version(mods)
    plot = tmp_path / "lib" / "plots" / "ch01.py"
    plot.write_text(plot.read_text() + "\n# a caption fixed\n")
    provenance._code_version.cache_clear()
    after = provenance.code_version(["lib.studies.ch01"]), provenance.code_version(mods)
    provenance._code_version.cache_clear()
    assert after[0] == before[0], "a plot edit changed the study's key"
    assert after[1] != before[1], "a plot edit did not change the chapter's execution key"
