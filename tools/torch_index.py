"""Which extra pip index gives PyTorch's CPU wheel, if it answers at once (used by `make`).

Usage: ``python tools/torch_index.py URL [SECONDS]``. Prints ``--extra-index-url URL`` when
``URL`` answers an HTTP request for its ``torch/`` page within ``SECONDS`` (default 5),
and nothing otherwise (with one line on stderr saying why), so that set-up moves on at
once instead of waiting on network timeouts.

Why an *extra* index: ``--index-url`` would replace the index the user has configured (a
university or company mirror, ``PIP_INDEX_URL``, ``pip.conf``). As an extra index the
CPU wheel is still chosen: its version, e.g. ``2.13.0+cpu``, sorts after the plain
``2.13.0`` of the same release (PEP 440 local versions), and pip installs the highest.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

__all__ = ["main", "reachable"]


def reachable(url: str, seconds: float = 5.0) -> tuple[bool, str]:
    """``(True, "")`` when ``url``'s ``torch/`` page answers with success within
    ``seconds``, else ``(False, why)``: an index without that page cannot give torch."""
    page = url.rstrip("/") + "/torch/"
    try:
        with urllib.request.urlopen(page, timeout=seconds) as response:  # noqa: S310
            response.read(1)
        return True, ""
    except urllib.error.HTTPError as err:
        return False, f"HTTP {err.code} for {page}"
    except (OSError, ValueError) as err:  # URLError, timeouts, refused connections
        return False, f"{type(err).__name__}: {getattr(err, 'reason', err)}"


def main(argv: list[str]) -> int:
    if not argv or not argv[0]:
        return 0  # TORCH_INDEX= (empty): let pip choose
    url = argv[0]
    seconds = float(argv[1]) if len(argv) > 1 else 5.0
    ok, why = reachable(url, seconds)
    if ok:
        print(f"--extra-index-url {url}")
    else:
        print(
            f"[setup] PyTorch's CPU index {url} did not answer within {seconds:g} s ({why}); "
            "installing torch from your configured index only (on Linux the default wheel "
            "is the large CUDA build)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
