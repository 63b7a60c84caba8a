"""``python -m course_utils``: the cross-platform warm-up, and what the Makefile runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import __main__ as cli
from course_utils.experiments import zoo

ROOT = Path(__file__).resolve().parents[1]


def test_where_prints_the_cache_folder(tmp_path):
    env = {"COURSE_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "course_utils", "where"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert out.stdout.strip() == str(tmp_path)


def test_warm_runs_the_zoo_warm_up_and_says_where(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(zoo, "warm_cache", lambda: calls.append(1) or ["m"] * 8)
    assert cli.main(["warm"]) == 0
    assert calls == [1]
    assert str(tmp_path) in capsys.readouterr().out


def test_an_unknown_command_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train-everything"])
    assert "warm" in capsys.readouterr().err


def test_the_makefile_warms_with_the_cross_platform_command():
    makefile = (ROOT / "Makefile").read_text()
    warm = makefile[makefile.index("\nwarm:") : makefile.index("\n\n", makefile.index("\nwarm:"))]
    assert "$(PY) -m course_utils warm" in warm
    snippets = [code for _, code in re.findall(r"\$\(PY\) -c (['\"])(.+?)\1", makefile)]
    assert snippets, "the Makefile's inline Python was not found: update this test"
    for snippet in snippets:  # every inline Python must at least import what it names
        imports = ";".join(
            p for p in snippet.split(";") if p.strip().startswith(("import", "from"))
        )
        subprocess.run([sys.executable, "-c", imports], check=True, cwd=ROOT)
