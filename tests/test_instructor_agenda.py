"""The clock-time agendas of docs/INSTRUCTOR.md add up: no gaps, room for each chapter."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "INSTRUCTOR.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| (\d\d):(\d\d)–(\d\d):(\d\d) \| ([^|]+) \|[^|]*\| ([^|]+) \|$", re.MULTILINE)
DECK_MINUTES = 10  # the least a deck can take


def agendas() -> list[list[tuple[int, int, str, str]]]:
    """Each clock table as (start, end, block, length) rows, in minutes after midnight."""
    tables = []
    for table in re.split(r"\n\n", GUIDE):
        rows = [
            (60 * int(h1) + int(m1), 60 * int(h2) + int(m2), block.strip(), length.strip())
            for h1, m1, h2, m2, block, length in ROW.findall(table)
        ]
        if rows:
            tables.append(rows)
    return tables


def test_there_is_a_clock_agenda_for_one_day_and_for_each_of_two_days():
    assert len(agendas()) == 3


def test_each_block_starts_when_the_last_one_ends():
    for rows in agendas():
        for (_, end, block, _), (start, _, following, _) in zip(rows, rows[1:], strict=False):
            assert start == end, (
                f"{block} ends at {end // 60}:{end % 60:02d}, {following} starts later"
            )
        assert all(end > start for start, end, _, _ in rows)


def test_every_agenda_has_breaks_and_lunch_and_a_buffer_on_the_first_day():
    one_day, day_1, day_2 = agendas()
    for rows in (one_day, day_1, day_2):
        blocks = [block for _, _, block, _ in rows]
        assert "lunch" in blocks and "break" in blocks
    assert "buffer" in [block for _, _, block, _ in one_day]
    assert "buffer" in [block for _, _, block, _ in day_1]


def test_a_chapter_block_leaves_its_readme_time_plus_a_deck():
    for rows in agendas():
        for start, end, block, length in rows:
            quoted = re.search(r"README: (\d+) min", length)
            if quoted:
                needed = int(quoted.group(1)) + DECK_MINUTES
                assert end - start >= needed, f"{block}: {end - start} min for {needed}"
            plain = re.fullmatch(r"(\d+) min", length)
            if plain:
                assert end - start == int(plain.group(1)), f"{block}: clock and length disagree"
