"""Exercise checks for chapter 4 (regularization and structured pruning)."""

from __future__ import annotations

__all__: list[str] = []
