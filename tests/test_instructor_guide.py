"""docs/INSTRUCTOR.md stays true: README times, make targets, benchmark keys it cites."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "INSTRUCTOR.md").read_text(encoding="utf-8")


def readme_minutes() -> dict[int, int]:
    """Chapter number -> reading + exercise minutes, from the README's chapter table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d) \|.*\| (\d+) min \|$", readme, re.MULTILINE)
    return {int(n): int(m) for n, m in rows}


def test_guide_quotes_the_readme_chapter_times():
    table = readme_minutes()
    assert sorted(table) == [1, 2, 3, 4, 5, 6]
    quoted = re.findall(r"R(\d) \(README: (\d+) min\)", GUIDE)
    assert {int(n) for n, _ in quoted} == set(table), "every chapter's time is quoted"
    for n, minutes in quoted:
        assert int(minutes) == table[int(n)], f"R{n}: guide says {minutes}, README {table[int(n)]}"


def test_make_targets_in_the_guide_exist():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    used = set(re.findall(r"(?:`|^    )make ([a-z][a-z-]*)", GUIDE, re.MULTILINE))
    assert used and used <= targets, used - targets


def test_benchmark_keys_in_the_guide_are_what_the_benchmark_writes():
    assert "sec_99_notebooks" in GUIDE and "benchmarks/latest.json" in GUIDE
    section = (ROOT / "tools" / "bench" / "sec_99_notebooks.py").read_text(encoding="utf-8")
    runner = (ROOT / "tools" / "bench" / "run.py").read_text(encoding="utf-8")
    assert "results[path.name] = " in section
    assert re.search(r'report\["sections"\]\[name\] = \{\s*"results"', runner)
    assert '"latest.json"' in runner


def test_every_predict_then_run_prompt_has_an_answer_in_the_guide():
    """Each **Predict, then run** paragraph of a chapter has one row in the guide's table."""
    import json

    section = GUIDE.split("## Predict, then run", 1)[1].split("\n## ", 1)[0]
    answers = re.findall(r"^\| (\d+b?) \| .+ \| .+ \|$", section, re.MULTILINE)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        chapter = path.name.split("_")[0].lstrip("0")
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        prompts = sum("".join(c["source"]).count("**Predict, then run.**") for c in cells)
        assert prompts >= 1, f"{path.name} asks no prediction"
        assert answers.count(chapter) == prompts, (
            f"{path.name}: {prompts} prompt(s), {answers.count(chapter)} answer(s) in the guide"
        )
