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
    """Build the whole book once per test session (fast profile, warnings as errors).

    Chapter executions are reused when up to date (the chapter tests produce the same ones). The
    build names a placeholder public repository (``LAUNCH_REPOSITORY``), so that the Binder and Colab
    launch buttons are rendered and their links can be checked."""
    from lib import runner

    old = os.environ.get("IB_REPOSITORY_URL")
    os.environ["IB_REPOSITORY_URL"] = LAUNCH_REPOSITORY
    try:
        return runner.build("fast", "auto", 0)
    finally:
        if old is None:
            os.environ.pop("IB_REPOSITORY_URL", None)
        else:
            os.environ["IB_REPOSITORY_URL"] = old


def pytest_collection_modifyitems(config, items):
    """Quick unit tests first; then the chapters (executed, then re-executed by nbval); then the
    book build, which reuses those executions; then the browser test, which reads the built book."""
    order = {"test_chapters.py": 1, "test_book.py": 2, "test_browser.py": 3}
    items.sort(key=lambda it: order.get(it.path.name, 0))
