"""pyproject.toml and environment.yml name the same dependencies; the torch range admits the CPU
wheel used here (2.13) and the GPU machine's 2.11."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch", "dask[distributed]": "dask"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ ]", req, maxsplit=1)[0].strip().lower()


def _pyproject():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(data["dependencies"])
    for extra in data["optional-dependencies"].values():
        reqs += extra
    return {CONDA_NAMES.get(_name(r), _name(r)): r for r in reqs}


def test_environment_yml_names_the_same_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip", "distributed"}
    pip = {_name(d) for block in env["dependencies"] if isinstance(block, dict) for d in block.get("pip", [])
           if not d.startswith("-")}
    assert not conda & pip, "a dependency is listed for both conda and pip"
    assert conda | pip == set(_pyproject())


def test_torch_range_admits_cpu_and_gpu_machines():
    req = _pyproject()["pytorch"]
    spec = SpecifierSet(req[len("torch"):])
    assert "2.13.0" in spec and "2.11.0" in spec and "2.14.1" not in spec


def _readme_commands() -> list[str]:
    """The commands of the README's code blocks, in order, without comments."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", readme, re.S)
    return [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines() if ln.split("#")[0].strip()]


def test_ci_runs_exactly_the_readme_commands_in_order():
    """.ci/run is the README's first two commands (book, then test), nothing else."""
    cmds = _readme_commands()
    assert cmds[:2] == ["python3 tasks.py book", "python3 tasks.py test"]
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    run = [ln for ln in lines if ln.startswith("python3 ")]
    assert run == cmds[:2]
