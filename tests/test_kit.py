"""The offline workshop kit (``make kit``, tools/kit.py) installs and runs with no network.

For Linux x86-64 and this Python: the kit is built into a temporary folder, ``make setup
KIT=...`` (what ``make lab KIT=...`` runs first) installs it into a fresh venv with pip
cut off from every index (``PIP_NO_INDEX``, an unreachable ``PIP_INDEX_URL``, no pip
configuration, so no find-links but the kit's), and chapter 1 runs from that venv in fast
mode on the kit's copy of the cache.

Slow (a minute or two, torch is installed), so it runs only with ``COURSE_KIT=1``: ``make
kit-check``, part of ``make test``, sets it after nbval, whose run cached chapter 1's models.
The kit build needs the network (or pip's cache); the install and the run do not.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import kit
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "01_baseline_rnn.ipynb"
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_markers_are_those_of_the_target_platform():
    """pip is told the target's environment markers (it would use this machine's)."""
    from packaging.markers import Marker  # as pip evaluates them (pip vendors this package)

    win, mac = kit.markers("windows-x86_64", "3.13"), kit.markers("macos-arm64", "3.11")
    assert Marker('sys_platform == "win32" and python_version >= "3.12"').evaluate(win)
    assert not Marker('platform_system == "Linux"').evaluate(mac)
    assert Marker('platform_machine == "arm64" and python_version < "3.12"').evaluate(mac)


def test_the_files_pip_download_names_are_found():
    output = "Saved /k/wheels/a-1-py3-none-any.whl\n  File was already downloaded /k/b.whl\n"
    assert kit.fetched(output) == [Path("/k/wheels/a-1-py3-none-any.whl"), Path("/k/b.whl")]


def run(cmd: list, env: dict, timeout: int) -> float:
    """Run ``cmd``; fail with its output if it fails. Returns the seconds it took."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(c) for c in cmd],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return time.perf_counter() - start


def offline(env: dict) -> dict:
    """``env`` with pip unable to reach any index or configured find-links (and without
    the variables of a ``make`` this test may run under)."""
    drop = {"VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    env = {k: v for k, v in env.items() if not k.startswith("PIP_") and k not in drop}
    return env | {
        "PIP_CONFIG_FILE": os.devnull,  # no pip.conf: its indexes and find-links are gone
        "PIP_NO_INDEX": "1",
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # nothing listens on port 9
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


@pytest.mark.skipif(
    os.environ.get("COURSE_KIT") != "1", reason="slow: set COURSE_KIT=1 (make kit-check)"
)
@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64", reason="the Linux x86-64 kit"
)
def test_kit_installs_offline_and_runs_chapter_1(tmp_path):
    folder, venv, cache = tmp_path / "kit", tmp_path / "venv", tmp_path / "cache"
    env = dict(os.environ)
    build_s = run(
        [sys.executable, "tools/kit.py", "--out", folder]
        + ["--platform", "linux-x86_64", "--python", PYTHON],
        env,
        timeout=1800,
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [r["missing"] for r in manifest["combinations"]] == [""], manifest["missing"]
    assert (folder / "wheels" / manifest["course_wheel"]).is_file()
    assert any(
        name.startswith("torch-") and "+cpu" in name for name in os.listdir(folder / "wheels")
    )
    assert not any(name.startswith("nvidia") for name in os.listdir(folder / "wheels"))
    assert "make lab KIT=" in (folder / "README.txt").read_text()

    # What `make lab KIT=...` runs before JupyterLab, into a venv and a cache of its own.
    install_s = run(
        ["make", "--no-print-directory", "setup", f"KIT={folder}", f"VENV={venv}"]
        + [f"PYTHON={sys.executable}"],
        offline(env) | {"COURSE_CACHE": str(cache)},
        timeout=1800,
    )
    bin_dir = venv / "bin"
    version = subprocess.run(
        # chapter 6's ONNX Runtime section is in the kit too (the deploy extra)
        [bin_dir / "python", "-c", "import onnxruntime, torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "+cpu" in version
    if (folder / "cache").is_dir():
        assert sorted(os.listdir(cache)) == sorted(os.listdir(folder / "cache"))

    chapter_env = offline(env) | {
        "COURSE_FAST": "1",
        "COURSE_PROGRESS": "0",
        "COURSE_CACHE": str(cache),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter"),  # no kernel from the user's folders
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    }
    chapter_s = run(
        [bin_dir / "jupyter", "nbconvert", "--to", "notebook", "--execute"]
        + ["--ExecutePreprocessor.timeout=1200", "--output-dir", tmp_path / "out", CHAPTER],
        chapter_env,
        timeout=1800,
    )
    executed = json.loads((tmp_path / "out" / CHAPTER.name).read_text())
    errors = [
        out
        for cell in executed["cells"]
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    sizes = manifest["bytes"]
    print(
        f"\n[kit] Linux x86-64, Python {PYTHON}: wheels {sizes['wheels'] / 1e6:.0f} MB, "
        f"cache {sizes['cache'] / 1e6:.0f} MB; built in {build_s:.0f} s, installed offline "
        f"in {install_s:.0f} s, chapter 1 (fast mode) ran in {chapter_s:.0f} s"
    )
