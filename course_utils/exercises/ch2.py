"""Exercise checks for chapter 2 (magnitude pruning)."""

from __future__ import annotations

__all__: list[str] = []
