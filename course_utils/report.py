"""Reporting results: tables that print as text, HTML and Markdown, and one number format.

Introduced in chapter 1 (the parameter table) and used by every chapter and by the
benchmark. Nothing here knows about models: any list of row dicts is a table.
:func:`median_spread` and :func:`median_range` state a result over several seeds as
``median (min-max)`` (chapter 3 onwards).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

__all__ = ["Table", "median_range", "median_spread"]


def median_spread(values: Sequence[float]) -> dict:
    """``{"median", "min", "max", "values"}`` of ``values`` (one result per seed)."""
    values = list(values)
    if not values:
        raise ValueError("values is empty: there is no median of nothing")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def median_range(
    spread: Mapping,
    *,
    scale: float = 1.0,
    unit: str = "",
    between: str = "-",
    always_range: bool = False,
) -> str:
    """A :func:`median_spread` as ``"91.0 (90.0-92.0)"``: the median, then the range.

    Numbers are multiplied by ``scale`` (100 for fractions shown in percent) and printed
    with one decimal; ``unit`` follows the median (``" %"`` gives ``"91.0 % (90.0-92.0)"``);
    ``between`` separates min and max (``" to "`` reads better when a value can be
    negative). A single value prints without a range, unless ``always_range``.
    """
    median = f"{scale * spread['median']:.1f}{unit}"
    if len(spread["values"]) == 1 and not always_range:
        return median
    return f"{median} ({scale * spread['min']:.1f}{between}{scale * spread['max']:.1f})"


class Table(list):
    """A list of row dicts that prints as a fixed-width table and renders as HTML."""

    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self:
            cols += [c for c in row if c not in cols]
        return cols

    @staticmethod
    def _fmt(value) -> str:
        """One rule for every number: ints with thousands separators; floats with 4
        decimals below 1, otherwise 4 significant digits (at least the integer part),
        never in exponent form: ``0.9624``, ``1.000``, ``157.6``, ``45,350``."""
        if isinstance(value, float):
            if not math.isfinite(value):
                return str(value)
            if abs(value) < 1:
                return f"{value:.4f}"
            decimals = max(0, 4 - len(str(int(abs(value)))))
            return f"{value:,.{decimals}f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    def __str__(self) -> str:
        cols = self.columns()
        cells = [[self._fmt(row.get(c, "")) for c in cols] for row in self]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
        numeric = [
            all(isinstance(row.get(c), int | float) for row in self if row.get(c, "") != "")
            for c in cols
        ]
        just = [str.rjust if n else str.ljust for n in numeric]
        lines = ["  ".join(j(c, w) for c, w, j in zip(cols, widths, just, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(j(v, w) for v, w, j in zip(r, widths, just, strict=True)) for r in cells
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        cols = self.columns()
        head = "".join(f"<th>{c}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{self._fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>"
            for r in self
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def to_markdown(self) -> str:
        cols = self.columns()
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(self._fmt(r.get(c, "")) for c in cols) + " |" for r in self]
        return "\n".join(lines)
