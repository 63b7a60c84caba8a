"""The install paths agree: pyproject, environment.yml, README commands, CI script."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def canonical(requirement: str) -> tuple[str, str]:
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", requirement)
    name = match.group(1).lower().replace("_", "-")
    return CONDA_NAMES.get(name, name), match.group(2).replace(" ", "")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = dict(canonical(r) for r in pyproject["project"]["dependencies"])
    conda = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        item = line.strip()
        if not item.startswith("- ") or item.endswith(":"):
            continue
        item = item[2:].strip()
        if item in {"pip", "-e ."} or item.startswith("python"):
            continue
        name, spec = canonical(item)
        conda[name] = spec
    assert conda == wanted


def test_no_torchtext_anywhere():
    pattern = re.compile(r"^\s*(import torchtext|from torchtext)", re.MULTILINE)
    for path in [*ROOT.glob("course_utils/**/*.py"), *ROOT.glob("notebooks/*.ipynb")]:
        assert not pattern.search(path.read_text()), path
    assert "torchtext" not in (ROOT / "pyproject.toml").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^make test$", (ROOT / ".ci/run").read_text(), re.MULTILINE)
