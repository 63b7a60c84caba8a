"""Every chapter notebook executed headless, in order, each on a fresh kernel, timed.

The run starts from an empty cache, as a class does: chapter 1 trains and caches the
baseline; then what `make warm` adds (the baselines of seeds 1 and 2, chapter 6's pruned
models) is built and timed on its own line; then chapters 2-6 run on that cache. The
executed copies are written to build/bench/notebooks/: one clean top-to-bottom run each.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import nbformat
from common import md_table
from nbclient import NotebookClient

from course_utils.experiments import zoo

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[2]
WARM = "make warm, after chapter 1"
OUT = ROOT / "build" / "bench" / "notebooks"  # the executed copies, outputs included


def run(mode: str) -> dict:
    cache = tempfile.mkdtemp(prefix="course-cache-")
    env = {
        "COURSE_PROGRESS": "0",
        "COURSE_FAST": "1" if mode == "quick" else "0",
        "COURSE_CACHE": cache,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernels inherit these
    results = {}
    try:
        for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(
                nb,
                timeout=1800,
                kernel_name="python3",
                store_widget_state=False,
                resources={"metadata": {"path": str(path.parent)}},
            )
            start = time.perf_counter()
            client.execute()
            results[path.name] = time.perf_counter() - start
            OUT.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, OUT / path.name)
            if mode == "full" and path.name.startswith("01"):  # what `make warm` adds
                start = time.perf_counter()
                zoo.warm_cache(progress=False)
                results[WARM] = time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    markdown = "\n".join(
        [
            f"## Notebook execution time ({'fast' if mode == 'quick' else 'full'} mode, headless)",
            "",
            md_table(["notebook", "seconds"], [[k, f"{v:.0f}"] for k, v in results.items()]),
        ]
    )
    return {"results": results, "markdown": markdown}
