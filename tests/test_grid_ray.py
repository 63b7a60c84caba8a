"""The verdict grid as Ray tasks: the same rows as the serial loop, one shared store, retries.

A tiny grid (the tiny baseline and budget of test_unit_grid) runs serially at one thread
and through Ray with two workers; the rows must be equal field by field (timings aside),
either engine must resume the other's store, and a row that raises is retried once and
then reported after the others are stored. Needs the ``scale`` extra (in ``dev``); without
Ray only the install hint is checked.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
from test_unit_grid import BUDGET, METHODS, baseline_for, plain

from course_utils.experiments import unit_grid

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed: pip install -e '.[scale]' (it is in the dev extra)",
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def own_cache(cache, monkeypatch):
    """From-scratch LSTMs go to the test's cache, never the course's."""
    monkeypatch.setenv("COURSE_CACHE", str(cache))


def run(store, cache, **kwargs):
    options = {"seeds": (0,), "units": (3,), "methods": METHODS, "budget": BUDGET}
    options.update(kwargs)
    return unit_grid.run_grid(store=store, baseline=baseline_for(cache), progress=False, **options)


def test_without_ray_workers_say_how_to_install_it(cache, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(ImportError, match=r"pip install -e '\.\[scale\]'"):
        run(tmp_path, cache, workers=2)
    rows = run(tmp_path, cache, workers=1, methods=("unit_magnitude",))  # the serial loop
    assert len(rows) == 1


@needs_ray
def test_rows_through_ray_equal_the_serial_rows(cache, tmp_path, monkeypatch):
    # Each run gets an empty model cache, so both train their from-scratch LSTM.
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "serial-cache"))
    serial = run(tmp_path / "serial", cache, threads=1)
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "ray-cache"))
    on_ray = run(tmp_path / "ray", cache, workers=2)
    assert not any(r["stored"] for r in on_ray)
    assert plain(on_ray) == plain(serial)
    assert [r["method"] for r in on_ray] == list(METHODS)  # the serial loop's order
    names = sorted(p.name for p in (tmp_path / "serial").glob("row-*.json"))
    assert names == sorted(p.name for p in (tmp_path / "ray").glob("row-*.json"))
    assert len(list((tmp_path / "ray-cache").glob("baseline-*"))) == 1  # the workers' cache


@pytest.fixture(scope="module")
def ray_session(cache):
    """One local Ray instance for the tests below (run_grid leaves it running)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[scale]'")
    env = {"COURSE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


@needs_ray
def test_either_engine_resumes_the_others_store(ray_session, cache, tmp_path):
    full = run(tmp_path / "reference", cache, threads=1)
    run(tmp_path / "a", cache, threads=1, methods=METHODS[:1])  # serial, then Ray
    resumed = run(tmp_path / "a", cache, workers=2)
    assert [r["stored"] for r in resumed] == [True, False, False]
    run(tmp_path / "b", cache, workers=2, methods=METHODS[1:])  # Ray, then serial
    resumed = run(tmp_path / "b", cache, threads=1)
    assert [r["stored"] for r in resumed] == [False, True, True]
    assert plain(resumed) == plain(full)


@needs_ray
def test_each_task_sets_its_thread_count(ray_session):
    from course_utils.experiments.grid_ray import run_on_ray

    def threads():
        import torch

        return torch.get_num_threads()

    seen = {}
    run_on_ray(threads, [("a", ()), ("b", ())], seen.__setitem__, workers=2, threads=2)
    assert seen == {0: 2, 1: 2}  # the workers' own default is 1 (OMP_NUM_THREADS)


@needs_ray
def test_a_failing_row_is_retried_once_then_reported(ray_session, cache, tmp_path, monkeypatch):
    from course_utils.experiments.grid_ray import GridFailure

    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def flaky(name, *args, **kwargs):  # runs in the workers, where grid_row is the real one
        import os
        import time

        from course_utils.experiments import unit_grid as real

        (attempts / f"{name}-{os.getpid()}-{time.time_ns()}").touch()
        tries = len(list(attempts.glob(f"{name}-*")))
        if name == "gal_topk" or (name == "unit_magnitude" and tries == 1):
            raise RuntimeError(f"{name} broke on try {tries}")
        return real.grid_row(name, *args, **kwargs)

    monkeypatch.setattr(unit_grid, "grid_row", flaky)
    with pytest.raises(GridFailure, match=r"gal_topk, 3 units, seed 0: RuntimeError") as info:
        run(tmp_path / "store", cache, workers=2)
    assert [label for label, _ in info.value.failed] == ["gal_topk, 3 units, seed 0"]
    assert "gal_topk broke on try 2" in str(info.value)
    tries = {m: len(list(attempts.glob(f"{m}-*"))) for m in METHODS}
    assert tries == {"gal_topk": 2, "unit_magnitude": 2, "scratch": 1}
    assert len(list((tmp_path / "store").glob("row-*.json"))) == 2  # the others are stored


# --- the benchmark's options (nothing is run) ----------------------------------------------------


def bench_modules():
    bench = str(Path(__file__).resolve().parents[1] / "tools" / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    import readme
    import run as bench_run
    import sec_05d_grid_workers

    return bench_run, readme, sec_05d_grid_workers


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--address", "ray://head:10001"], "--address needs --workers"),
        (["--only", "sec_05d_grid_workers"], "needs --workers"),
        (["--workers", "0"], "at least 1"),
    ],
)
def test_bench_options_for_workers_are_checked(argv, message, capsys):
    bench_run, _, _ = bench_modules()
    with pytest.raises(SystemExit):
        bench_run.main(argv)
    assert message in capsys.readouterr().err


def test_only_the_grid_section_gets_the_workers():
    bench_run, _, _ = bench_modules()
    seen = []

    class Grid:
        def run(mode, workers=None, address=None):
            seen.append((mode, workers, address))

    class Timing:
        def run(mode):
            seen.append((mode,))

    bench_run.run_section(Grid, "quick", 2, "ray://head:10001")
    bench_run.run_section(Timing, "quick", 2, "ray://head:10001")
    assert seen == [("quick", 2, "ray://head:10001"), ("quick",)]


def test_the_workers_section_reports_its_ratio_and_identity():
    _, readme, section = bench_modules()
    results = {
        "grid": {"seeds": [0, 1], "units": [32], "methods": ["gal", "scratch"], "rows": 4},
        "cpu_count": 2,
        "serial": {"threads": 2, "seconds": 100.0},
        "ray": {"workers": 2, "threads": 1, "seconds": 80.0, "cluster": False},
        "serial_one_thread": {"threads": 1, "seconds": 150.0},
        "speedup": 1.25,
        "rows_identical_to_one_thread": True,
        "rows_identical_to_default_threads": False,
    }
    text = section.markdown(results)
    assert "| Ray tasks (local) | 2 x 1 | 80 | 1.25 |" in text
    assert "is NOT reached" in text and "is identical to the serial loop's at one" in text
    report = {"sections": {"sec_05d_grid_workers": {"results": results}}}
    ((chapter, target, measured, verdict),) = readme.rows(report)
    assert measured == "1.25x, rows identical" and verdict == "**not met**"
