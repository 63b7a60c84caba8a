"""Exercise checks for chapter 3 (gradient-based pruning)."""

from __future__ import annotations

__all__: list[str] = []
