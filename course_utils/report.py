"""Reporting results: tables that print as text, HTML and Markdown, and one number format.

Introduced in chapter 1 (the parameter table) and used by every chapter and by the
benchmark. Nothing here knows about models: any list of row dicts is a table.
"""

from __future__ import annotations

__all__ = ["Table"]


class Table(list):
    """A list of row dicts that prints as a fixed-width table and renders as HTML."""

    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self:
            cols += [c for c in row if c not in cols]
        return cols

    @staticmethod
    def _fmt(value) -> str:
        if isinstance(value, float):
            if abs(value) >= 1e5:
                return f"{value:,.0f}"
            return f"{value:.4f}" if abs(value) < 1 else f"{value:.4g}"
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
