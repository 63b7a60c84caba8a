"""``python -m course_utils warm``: cache every model the chapters load, on any platform.

The same on Windows, macOS and Linux, with or without ``make``: run it with the Python of
the course's environment (``.venv/bin/python`` or ``.venv\\Scripts\\python``, or
``python`` in an activated environment). ``make warm`` calls it. The cache folder is
``$COURSE_CACHE`` (``make`` sets it to ``.cache`` in the course folder; otherwise
``~/.cache/rnn-pruning-course``); ``python -m course_utils where`` prints it. Copy that
folder to other machines to spare them the training (docs/INSTRUCTOR.md says how).
"""

from __future__ import annotations

import argparse
import sys
import time

from .experiments import zoo
from .settings import cache_dir

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils", description=__doc__.split("\n", 1)[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "warm", help="train and cache every model the chapters load (about 5 minutes on 2 cores)"
    )
    commands.add_parser("where", help="print the cache folder")
    args = parser.parse_args(argv)
    if args.command == "where":
        print(cache_dir())
        return 0
    start = time.perf_counter()
    entries = zoo.warm_cache()
    print(
        f"Cached in {cache_dir()}: chapter 1's baselines, the baselines of the other seeds, "
        f"chapter 4's small LSTM and chapter 6's {len(entries)} pruned models "
        f"({time.perf_counter() - start:.0f} s)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
