"""Exercise checks for chapter 6 (compare and deploy)."""

from __future__ import annotations

__all__: list[str] = []
