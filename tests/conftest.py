import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("IB_ROOT", str(ROOT))
os.environ.setdefault("IB_THREADS", "1")
#: the placeholder repository of the test build's launch buttons (lib.launch)
LAUNCH_REPOSITORY = "https://github.com/example/implicit-bias-book"

import torch  # noqa: E402

# Unit tests run small tensor programs: one thread is far faster on a loaded 2-core machine.
torch.set_num_threads(int(os.environ["IB_THREADS"]))


@pytest.fixture
def tmp_build(tmp_path, monkeypatch):
    """Point every build output (claims, figures, cache) at a temporary folder."""
    monkeypatch.setenv("IB_BUILD", str(tmp_path / "_build"))
    return tmp_path / "_build"


@pytest.fixture(scope="session")
def book_html():
    """The book as ``python3 tasks.py book`` builds it (fast profile, warnings as errors), with the
    repository configuration the checkout has (none: no launch buttons). Executions and the rendered
    site are reused when up to date, so after the README's book command this only checks they are."""
    from lib.book import site

    return site.build("fast", "auto", 0)


@pytest.fixture(scope="session")
def launch_html(tmp_path_factory):
    """The same book built for a (placeholder) public repository, so that the Binder and Colab launch
    buttons are rendered; staged and rendered in a temporary folder, never over the reader's
    ``_build/html``. The URL is passed as an argument, not through the environment."""
    from lib.book import site

    return site.build("fast", "auto", 0, dest=tmp_path_factory.mktemp("launch"),
                        repository=(LAUNCH_REPOSITORY, "main"))


def pytest_collection_modifyitems(config, items):
    """Quick unit tests first; then the chapters (executed, then re-executed by nbval); then the
    book build, which reuses those executions; then the browser test, which reads the built book."""
    order = {"test_chapters.py": 1, "test_book.py": 2, "test_browser.py": 3}
    items.sort(key=lambda it: order.get(it.path.name, 0))
