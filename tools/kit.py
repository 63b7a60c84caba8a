"""The offline workshop kit: ``make kit`` (``python tools/kit.py [--out KIT] ...``).

Writes a folder to copy onto a USB stick for a room without network:

- ``wheels/``: one flat wheelhouse with the course's dependencies (``[project]
  dependencies`` of pyproject.toml and the ``deploy`` extra), setuptools (to install the
  course folder editable), and the course's own wheel, for every platform and Python
  asked for; pip picks the files that fit the machine;
- ``cache/``: a copy of the warmed model cache (``$COURSE_CACHE``, see ``make warm``);
- ``slides/``: the decks of ``build/slides`` (``make kit`` builds them first);
- ``README.txt``: how to install from the kit (``make lab KIT=...``, or pip on Windows);
- ``manifest.json``: platforms, Pythons, every file with its size, the sizes per platform,
  the time each download took, and what is missing.

Only wheels: sources are downloaded with ``--only-binary=:all:``. A dependency published
as an sdist only is built here into a wheel when it is pure Python (``*-none-any.whl``,
valid everywhere) and reported; otherwise that platform and Python is missing.

torch is always PyTorch's CPU build. On Linux the default wheel on PyPI is the CUDA build
(several GB), so there torch comes only from pip's configured find-links and, when it
answers (tools/torch_index.py), PyTorch's CPU index; never from PyPI. Where no CPU wheel is
found for a platform and Python, that combination is skipped, said in one line and
recorded as missing: the kit covers the rest. On macOS and Windows PyPI's torch is the CPU
build, and the CPU index is only added as an extra index.

Network is needed here (pip's download cache makes a second build faster); none is needed
where the kit is installed. Standard library and pip only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from torch_index import reachable

ROOT = Path(__file__).resolve().parents[1]
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def _manylinux(arch: str) -> list[str]:
    """manylinux tags from glibc 2.28 (the torch wheels' floor) down: pip does not expand
    the ``manylinux_2_X`` tags it is given, so every one a wheel may carry is listed."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


PLATFORMS = {
    "linux-x86_64": _manylinux("x86_64"),
    "linux-aarch64": _manylinux("aarch64"),
    "macos-arm64": [f"macosx_{major}_0_arm64" for major in (14, 13, 12, 11)],
    "windows-x86_64": ["win_amd64"],
}
PYTHONS = ("3.11", "3.12", "3.13")
# What environment markers (``; sys_platform == "win32"``) see on each platform. pip
# evaluates them for the machine it runs on, even with --platform: without these, a
# Windows kit would lack pywinpty and colorama and a macOS kit would get torch's CUDA
# libraries, which are marked for Linux.
MARKERS = {
    "linux-x86_64": ("linux", "Linux", "x86_64", "posix"),
    "linux-aarch64": ("linux", "Linux", "aarch64", "posix"),
    "macos-arm64": ("darwin", "Darwin", "arm64", "posix"),
    "windows-x86_64": ("win32", "Windows", "AMD64", "nt"),
}
# pip, with its markers evaluated for the target (argv[1], JSON) instead of this machine.
PIP_FOR_TARGET = """
import json, sys
from pip._vendor.packaging import markers
target = markers.default_environment() | json.loads(sys.argv.pop(1))
markers.default_environment = lambda: dict(target)
from pip._internal.cli.main import main
sys.exit(main())
"""


def say(message: str) -> None:
    print(f"[kit] {message}", flush=True)


def pip(*args: str, markers: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m pip ARGS`` (markers evaluated with ``markers`` when given), its output
    captured."""
    if markers:
        cmd = [sys.executable, "-c", PIP_FOR_TARGET, json.dumps(markers), *args]
    else:
        cmd = [sys.executable, "-m", "pip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)


def target(platform: str, python: str) -> list[str]:
    """pip's options for downloading wheels for another platform and Python."""
    tags = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
    abi = "cp" + python.replace(".", "")
    interpreter = ["--python-version", python, "--implementation", "cp", "--abi", abi]
    return ["--only-binary=:all:", *tags, *interpreter]


def markers(platform: str, python: str) -> dict:
    """The environment markers of ``platform`` with CPython ``python``."""
    names = ("sys_platform", "platform_system", "platform_machine", "os_name")
    env = dict(zip(names, MARKERS[platform], strict=True))
    full = f"{python}.0"
    env |= {"python_version": python, "python_full_version": full}
    env |= {"implementation_version": full, "platform_release": "", "platform_version": ""}
    return env


def fetched(output: str) -> list[Path]:
    """The files pip download saved, or found already there, from its output."""
    found = re.findall(r"^\s*(?:Saved|File was already downloaded) (.+?)\s*$", output, re.M)
    return [Path(name) for name in found]


def dependencies() -> tuple[str, list[str]]:
    """(torch's requirement, the other dependencies) from pyproject.toml: the base ones and
    the ``deploy`` extra's (chapter 6's ONNX Runtime section)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project.get("optional-dependencies", {}).get("deploy", [])
    torch = [d for d in deps if re.match(r"torch\b", d)]
    return (torch[0] if torch else "torch"), [d for d in deps if d not in torch]


def torch_wheel(spec: str, platform: str, python: str, cpu_index: bool, stage: Path):
    """Download torch's CPU wheel into ``stage``: (path, "") or (None, why not)."""
    if platform.startswith("linux"):
        # --no-index: PyPI and mirrors are not asked (their Linux torch is the CUDA build);
        # pip's configured find-links still are, and the CPU index's torch page when up.
        sources = ["--no-index"]
        if cpu_index:
            sources += ["--find-links", f"{TORCH_INDEX}/torch/"]
    else:
        sources = ["--extra-index-url", TORCH_INDEX] if cpu_index else []
    run = pip("download", spec, "--no-deps", "-d", str(stage), *sources, *target(platform, python))
    files = fetched(run.stdout + run.stderr)
    if run.returncode or not files:
        where = "pip's find-links" + (" or PyPI" if not platform.startswith("linux") else "")
        where += " or PyTorch's CPU index" if cpu_index else " (PyTorch's CPU index is offline)"
        return None, f"no CPU wheel of torch found in {where}"
    wheel = files[0]
    if platform.startswith("linux") and "+cpu" not in wheel.name:
        wheel.unlink()
        return None, f"{wheel.name} is not the CPU build"
    return wheel, ""


def download(platform: str, python: str, wheels: Path, cpu_index: bool, sdists: dict) -> dict:
    """Every wheel one platform and Python needs, into ``wheels``. Returns its record."""
    start = time.perf_counter()
    record = {"platform": platform, "python": python, "files": [], "missing": ""}
    torch_spec, others = dependencies()
    with tempfile.TemporaryDirectory() as stage:
        torch, why = torch_wheel(torch_spec, platform, python, cpu_index, Path(stage))
        if torch is None:
            record["missing"] = why
        else:
            reqs = [str(torch), *others, "setuptools>=68"]
            for _ in range(5):  # each round may turn one sdist-only dependency into a wheel
                args = ["download", *reqs, "-d", str(wheels), "--find-links", str(wheels)]
                run = pip(*args, *target(platform, python), markers=markers(platform, python))
                output = run.stdout + run.stderr
                if run.returncode == 0:
                    record["files"] = sorted({p.name for p in fetched(output)})
                    break
                missing = re.search(r"No matching distribution found for (\S+)", output)
                if not missing or not pure_wheel(missing.group(1), wheels, sdists):
                    why = missing.group(1) if missing else output.strip().splitlines()[-1]
                    record["missing"] = f"no wheel for {why}"
                    break
    record["seconds"] = round(time.perf_counter() - start, 1)
    if record["missing"]:
        say(f"skipped {platform} Python {python}: {record['missing']}")
    else:
        size = sum((wheels / name).stat().st_size for name in record["files"])
        record["bytes"] = size
        count = len(record["files"])
        say(f"{platform} Python {python}: {count} wheels, {mb(size)}, {record['seconds']:.0f} s")
    return record


def pure_wheel(requirement: str, wheels: Path, sdists: dict) -> bool:
    """Build a wheel from the sdist of ``requirement`` (no wheel published): kept, and
    True, when pure Python (valid on every platform); else removed, and False."""
    if requirement in sdists:
        return sdists[requirement] is not None
    with tempfile.TemporaryDirectory() as out:
        run = pip("wheel", "--no-deps", requirement, "-w", out)
        built = list(Path(out).glob("*.whl"))
        pure = run.returncode == 0 and len(built) == 1 and built[0].name.endswith("-none-any.whl")
        sdists[requirement] = built[0].name if pure else None
        if pure:
            shutil.copy2(built[0], wheels)
    built_here = f"built {sdists[requirement]} here" if pure else "not pure Python, no wheel"
    say(f"{requirement} is published as an sdist only: {built_here}")
    return pure


def course_wheel(wheels: Path) -> str:
    """The course's own wheel, built from a copy of its sources (keeps build/ clean)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / "course_utils", src / "course_utils", ignore=ignore)
        run = pip("wheel", "--no-deps", str(src), "-w", str(wheels))
        if run.returncode:
            sys.exit(f"[kit] building the course's wheel failed:\n{run.stdout}{run.stderr}")
    return sorted(wheels.glob("rnn_pruning_course-*.whl"))[-1].name


def mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


README = """\
Offline workshop kit: pruning recurrent text classifiers
========================================================

Platforms and Pythons in this kit: {covered}
Not in this kit:
{missing}

You need the course folder too (the git checkout, or a copy of it). No network is needed.

Linux and macOS, with make (in the course folder; KIT= names this folder, e.g. ../kit):

    make lab KIT=../kit

  It creates .venv, installs torch and the course from KIT/wheels with
  pip install --no-index --find-links KIT/wheels, copies KIT/cache into the course's .cache
  when that is empty, and opens JupyterLab on your copies of the chapters.

Windows (Command Prompt, in the course folder; E:\\kit stands for this folder):

    py -3.12 -m venv .venv
    .venv\\Scripts\\activate
    pip install --no-index --find-links E:\\kit\\wheels torch
    pip install --no-index --find-links E:\\kit\\wheels rnn-pruning-course[deploy]
    xcopy /E /I /Y E:\\kit\\cache %USERPROFILE%\\.cache\\rnn-pruning-course
    python tools\\notebook_tools.py learner notebooks my-notebooks
    jupyter lab --notebook-dir=my-notebooks

  (py -3.11 or -3.13 instead of -3.12: any Python listed above for windows-x86_64. Instead
  of copying the cache, `set COURSE_CACHE=E:\\kit\\cache` before `jupyter lab` uses it in place.)

slides/ holds the decks (open slides/index.html); manifest.json lists every file.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "kit", help="kit folder")
    parser.add_argument(
        "--platform", action="append", choices=sorted(PLATFORMS), help="repeatable; default: all"
    )
    parser.add_argument("--python", action="append", choices=PYTHONS, help="repeatable")
    default_cache = os.environ.get("COURSE_CACHE") or Path.home() / ".cache/rnn-pruning-course"
    parser.add_argument("--cache", type=Path, default=default_cache, help="the warmed cache")
    parser.add_argument("--slides", type=Path, default=ROOT / "build" / "slides")
    args = parser.parse_args(argv)
    platforms, pythons = args.platform or list(PLATFORMS), args.python or list(PYTHONS)

    start = time.perf_counter()
    kit = args.out.resolve()
    wheels = kit / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    cpu_index, why = reachable(TORCH_INDEX)
    if not cpu_index:
        say(f"PyTorch's CPU index is offline ({why}): torch from pip's find-links only")
    own = course_wheel(wheels)
    sdists: dict[str, str | None] = {}
    records = [download(p, v, wheels, cpu_index, sdists) for p in platforms for v in pythons]

    missing = [f"{r['platform']} {r['python']}: {r['missing']}" for r in records if r["missing"]]
    if all(r["missing"] for r in records):
        sys.exit("[kit] no platform and Python could be covered:\n  " + "\n  ".join(missing))
    if args.cache.is_dir() and any(args.cache.iterdir()):
        shutil.copytree(args.cache, kit / "cache", dirs_exist_ok=True)
    else:
        missing.append(f"cache: {args.cache} is empty (run make warm first)")
    if args.slides.is_dir():
        shutil.copytree(args.slides, kit / "slides", dirs_exist_ok=True)
    else:
        missing.append(f"slides: {args.slides} not built (make slides)")

    covered = [f"{r['platform']} {r['python']}" for r in records if not r["missing"]]
    listed = "\n".join(f"  - {line}" for line in missing) or "  nothing"
    text = README.format(covered=", ".join(covered), missing=listed)
    (kit / "README.txt").write_text(text, encoding="utf-8")
    per_platform = {
        p: sum(
            (wheels / f).stat().st_size
            for f in {f for r in records if r["platform"] == p for f in r["files"]}
        )
        for p in platforms
    }
    files = {
        str(f.relative_to(kit)): f.stat().st_size
        for f in sorted(kit.rglob("*"))
        if f.is_file() and f.name != "manifest.json"
    }
    sizes = {part: tree_size(kit / part) for part in ("wheels", "cache", "slides")}
    manifest = {
        "course_wheel": own,
        "platforms": platforms,
        "pythons": pythons,
        "torch_cpu_index": TORCH_INDEX if cpu_index else None,
        "combinations": records,
        "missing": missing,
        "sdist_only": sdists,
        "bytes": {**sizes, "total": sum(files.values()), "wheels_per_platform": per_platform},
        "seconds": round(time.perf_counter() - start, 1),
        "files": files,
    }
    (kit / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    say(
        f"{kit}: {mb(manifest['bytes']['total'])} (wheels {mb(sizes['wheels'])}, cache "
        f"{mb(sizes['cache'])}, slides {mb(sizes['slides'])}) in {manifest['seconds']:.0f} s"
    )
    for line in missing:
        say(f"missing: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
