"""Exercise checks for chapter 5 (GAN-guided pruning)."""

from __future__ import annotations

__all__: list[str] = []
