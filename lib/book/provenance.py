"""Provenance: which code, libraries and machine produced a result."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import os
import platform
import subprocess

from . import paths


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the working tree (``-dirty`` when tracked files differ), or ``$IB_COMMIT``, or
    ``unknown`` outside a git checkout (e.g. a copy of the tree on a GPU machine)."""
    if os.environ.get("IB_COMMIT"):
        return os.environ["IB_COMMIT"]
    try:
        r = paths.root()
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=r, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=r, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _lib_base():
    from pathlib import Path

    base = paths.root() / "lib"
    return base if base.is_dir() else Path(__file__).resolve().parents[1]


def _module_file(name: str):
    """The source file of module ``name`` (``lib.x.y``) in this checkout, or ``None``."""
    parts = name.split(".")
    if parts[0] != "lib":
        return None
    base = _lib_base().joinpath(*parts[1:])
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _imports(name: str, source: str, is_package: bool) -> set[str]:
    """The ``lib`` modules a source imports (at any depth of the code, including inside functions)."""
    import ast

    pkg = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "lib")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "lib":
                continue
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # ``from lib import flows``: a module
    return {m for m in out if _module_file(m) is not None}


def module_closure(roots) -> list:
    """The source files of the ``lib`` modules reachable from ``roots`` (module names) through static
    imports, with the ``__init__`` of each package on the way; sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m in seen or _module_file(m) is None:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        f = _module_file(m)
        todo += sorted(_imports(m, f.read_text(), f.name == "__init__.py") - seen)
    return sorted({_module_file(m) for m in seen})


def code_version(roots=None) -> str:
    """A hash of the ``lib`` source files that ``roots`` (module names) can reach; of every ``lib``
    file when ``roots`` is ``None``. Study results are keyed by their study module's reach (the
    mathematics it calls), executions by the chapter's: editing a plot or the site recomputes nothing."""
    return _code_version(None if roots is None else tuple(sorted(set(roots))))


@functools.lru_cache(maxsize=64)
def _code_version(roots) -> str:
    base = _lib_base()
    files = sorted(base.rglob("*.py")) if roots is None else module_closure(roots)
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(base)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def chapter_modules(source: str) -> list[str]:
    """The ``lib`` modules a chapter's source imports (``from lib import x``, ``from lib.y import z``)."""
    import re

    mods: set[str] = set()
    for m in re.finditer(r"^\s*from (lib[\w.]*) import ([\w ,]+)|^\s*import (lib[\w.]*)", source, flags=re.M):
        if m.group(3):
            mods.add(m.group(3))
            continue
        mods.add(m.group(1))
        mods.update(f"{m.group(1)}.{n.split(' as ')[0].strip()}" for n in m.group(2).split(","))
    return sorted(x for x in mods if _module_file(x) is not None)


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "matplotlib", "cvxpy", "pandas"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def device_description(device) -> str:
    """A human-readable name of a torch device (GPU model, or CPU with core count)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
