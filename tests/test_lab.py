"""``python3 tasks.py lab``: JupyterLab in the project's environment, where a chapter's MyST source
opens as a notebook (Jupytext's contents manager) in the kernel that imports ``lib``. Checked without a
browser: the optional ``lab`` extra resolves against this environment, and the contents manager the
command configures serves every chapter as a notebook whose kernel is this environment's Python."""

import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.book import chapters

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tasks  # noqa: E402


def _lab_requirements() -> list[str]:
    reqs = md.requires("implicit-bias-book") or []
    return [r.split(";")[0].strip() for r in reqs if 'extra == "lab"' in r]


def test_lab_extra_names_jupyterlab_and_jupytext_and_resolves():
    reqs = _lab_requirements()
    names = {r.split(">")[0].split("=")[0].strip().lower() for r in reqs}
    assert {"jupyterlab", "jupytext"} <= names
    # what `pip install -e .[lab]` would install, resolved against this environment (no change made)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", *reqs],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"the lab extra does not resolve here:\n{r.stderr[-3000:]}"
    report = json.loads(r.stdout)
    assert all(item["metadata"]["name"].lower() != "torch" for item in report.get("install", [])), \
        "installing the lab extra would replace torch"


@pytest.mark.parametrize("stem", chapters.chapters())
def test_chapter_opens_as_a_notebook_through_jupytext(stem):
    from jupytext import TextFileContentsManager

    cm = TextFileContentsManager(root_dir=str(ROOT))
    model = cm.get(f"book/{stem}.md")
    assert model["type"] == "notebook"
    nb = model["content"]
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    tags = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])]
    assert "parameters" in tags, "the parameters cell must survive the round trip"
    assert any("chapter.start(" in c["source"] for c in nb["cells"] if c["cell_type"] == "code")


def test_the_notebook_kernel_is_this_environment():
    """The chapters' kernel ``python3`` starts this environment's Python, which imports ``lib``."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] in ("python", sys.executable)  # jupyter_client runs "python" as sys.executable
    r = subprocess.run([sys.executable, "-c", "import lib.book.chapter"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_lab_command_configures_jupytext_and_the_default_viewer():
    assert tasks.LAB_SETTINGS["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["myst"] == "Jupytext Notebook"
    src = Path(tasks.__file__).read_text()
    assert "--ServerApp.contents_manager_class=jupytext.TextFileContentsManager" in src
