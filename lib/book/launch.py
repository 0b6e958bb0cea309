"""Binder and Colab launch links, and the notebook twins they open.

A chapter's source is a Jupytext MyST Markdown file (``book/<stem>.md``). Binder and Colab open
notebooks from the book's *public repository*, and Colab only opens ``.ipynb`` files, so the links
need two things that a private checkout does not have:

1. the repository's URL: ``repository.url`` in ``_config.yml`` (or ``$IB_REPOSITORY_URL``, which
   overrides it), e.g. ``https://github.com/ORG/REPO``; while it is empty the book shows no launch
   links (sphinx-book-theme leaves them out) and no twins are needed;
2. an unexecuted ``.ipynb`` *twin* of each chapter next to its source (``book/<stem>.ipynb``),
   written by ``python -m lib notebooks`` and committed. Its first cell installs the book's library
   from the repository when ``lib`` is not importable (on Colab; Binder builds ``environment.yml``,
   which installs it), and its other cells are the chapter's cells, read by Jupytext.
   ``python -m lib notebooks --check`` (run by the test suite) fails when a twin is missing, stale,
   or present without a repository URL.

The links themselves are sphinx-book-theme's launch buttons (the rocket menu of each chapter page).
Their configuration (:func:`site_config`: ``repository`` and ``launch_buttons``) reaches the staged
``_config.yml`` of a build *only when a URL is set*: sphinx-book-theme cannot parse an empty
repository URL and stops the build. Binder opens
``<binderhub>/v2/gh/ORG/REPO/<branch>?urlpath=lab/tree/book/<stem>.ipynb`` and Colab
``<colab>/github/ORG/REPO/blob/<branch>/book/<stem>.ipynb``. :func:`links` builds the same two URLs
for the run banner and for the tests.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from . import paths

#: the tag of the twin's first cell (installs ``lib`` where it is missing)
SETUP_TAG = "launch-setup"
#: the services the launch buttons open (sphinx-book-theme's ``launch_buttons``)
BINDERHUB_URL = "https://mybinder.org"
COLAB_URL = "https://colab.research.google.com"
NOTEBOOK_INTERFACE = "jupyterlab"
_GITHUB = re.compile(r"^https://github\.com/(?P<org>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$")


def _config() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((paths.root() / "_config.yml").read_text()) or {}


def repository() -> tuple[str, str]:
    """``(url, branch)`` of the public repository: ``$IB_REPOSITORY_URL`` (and ``$IB_REPOSITORY_BRANCH``)
    or ``repository.url`` / ``repository.branch`` of ``_config.yml``; ``("", branch)`` when unset.

    Raises ``ValueError`` for a URL that is not a GitHub repository (Colab opens only those)."""
    repo = _config().get("repository") or {}
    url = (os.environ.get("IB_REPOSITORY_URL") or repo.get("url") or "").strip()
    branch = (os.environ.get("IB_REPOSITORY_BRANCH") or repo.get("branch") or "main").strip()
    if url and not _GITHUB.match(url):
        raise ValueError(
            f"invalid repository url {url!r}: expected https://github.com/ORG/REPO "
            "(set repository.url in _config.yml or IB_REPOSITORY_URL)"
        )
    return url.rstrip("/").removesuffix(".git"), branch


def links(stem: str, url: str | None = None, branch: str | None = None) -> dict[str, str]:
    """The Binder and Colab URLs of chapter ``stem`` (``{}`` without a repository URL)."""
    if url is None:
        url, branch = repository()
    if not url:
        return {}
    m = _GITHUB.match(url)
    if not m:
        raise ValueError(f"invalid repository url {url!r}: expected https://github.com/ORG/REPO")
    org, repo = m["org"], m["repo"]
    ui = {"classic": "tree", "jupyterlab": "lab/tree"}[NOTEBOOK_INTERFACE]
    path = f"book/{stem}.ipynb"
    return {
        "binder": f"{BINDERHUB_URL}/v2/gh/{org}/{repo}/{branch}?urlpath={ui}/{path}",
        "colab": f"{COLAB_URL}/github/{org}/{repo}/blob/{branch}/{path}",
    }


def site_config(url: str, branch: str) -> dict[str, Any]:
    """The ``_config.yml`` entries of the launch buttons for repository ``url`` (none without one).

    Without a URL the staged configuration names neither the repository nor the services, so
    sphinx-book-theme renders no buttons (and does not fail on an empty URL)."""
    if not url:
        return {}
    return {
        "repository": {"url": url, "branch": branch, "path_to_book": ""},
        "launch_buttons": {
            "binderhub_url": BINDERHUB_URL,
            "colab_url": COLAB_URL,
            "notebook_interface": NOTEBOOK_INTERFACE,
        },
    }


def setup_source(url: str, branch: str) -> str:
    """The twin's first cell: install the book's library from the repository if it is missing."""
    return (
        "# Opened on Colab (or anywhere without the book's library)? This installs `lib` and its\n"
        "# dependencies from the book's repository first; in a checkout it does nothing.\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("lib") is None:\n'
        f'    %pip install --quiet "implicit-bias-book @ git+{url}@{branch}"'
    )


def twin(stem: str, url: str, branch: str):
    """The unexecuted notebook twin of chapter ``stem`` (an ``nbformat`` notebook)."""
    import jupytext
    import nbformat

    nb = jupytext.read(paths.root() / "book" / f"{stem}.md")
    cell = nbformat.v4.new_code_cell(setup_source(url, branch), metadata={"tags": [SETUP_TAG]})
    nb.cells.insert(0, cell)
    for c in nb.cells:  # stable bytes: no ids that change on every write
        c.pop("id", None)
    nb.metadata.pop("jupytext", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def _text(nb) -> str:
    import nbformat

    return nbformat.writes(nb, version=4) + "\n"


def twin_path(stem: str) -> Path:
    return paths.root() / "book" / f"{stem}.ipynb"


def _expected() -> dict[Path, str | None]:
    """Each chapter's twin path and the text it must have (``None``: no twin, as no URL is set)."""
    from .chapters import chapters

    url, branch = repository()
    return {twin_path(stem): _text(twin(stem, url, branch)) if url else None for stem in chapters()}


def write_twins() -> list[Path]:
    """Write (or refresh) the twin of every chapter; remove them all when no URL is configured."""
    out = []
    for p, text in _expected().items():
        if text is None:
            p.unlink(missing_ok=True)
        else:
            paths.atomic_write_text(p, text)
            out.append(p)
    return out


def check_twins() -> list[str]:
    """Problems with the twins (empty when they match the sources and the configuration)."""
    problems = []
    for p, text in _expected().items():
        stem = p.stem
        if text is None:
            if p.exists():
                problems.append(f"{p.name}: a twin without a repository URL (remove it, or set repository.url)")
        elif not p.exists():
            problems.append(f"{p.name}: missing (run `python -m lib notebooks`)")
        elif p.read_text() != text:
            problems.append(f"{p.name}: out of date with {stem}.md (run `python -m lib notebooks`)")
    return problems
