"""The verdict grid of chapters 4 and 5: structured methods at several budgets, over seeds.

Introduced by chapter 5's benchmark section; chapters 4 and 5 read its table. One row per
(method, hidden units kept, seed): the seed's baseline pruned to that many units per layer
and direction and fine-tuned with one budget (:func:`~.gan_comparison.compare_unit_pruning`),
three GAL variants, and the control of Liu et al. 2019 ("Rethinking the value of network
pruning"): an LSTM of the same size trained from scratch with the baseline's own recipe
(their "Scratch-E": as many epochs as the dense baseline). :func:`grid_verdicts` answers
each question of :data:`QUESTIONS` per budget with
:func:`course_utils.verdicts.paired_seeds`: a paired difference per seed and the bootstrap
interval of the median difference, so "better" means better on this run's seeds beyond
what a resample of them could undo.

Each finished row is written to a store folder as soon as it completes (one small JSON
file, written atomically, keyed by the method, the number of units, the whole recipe and
the baseline's config, data and weights), so an interrupted run resumes where it stopped
and a changed recipe never reads an old row. Change :data:`GRID_VERSION` when the code of
a method changes what it computes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from ..checkpoints import weights_digest
from ..checks import positive_int
from ..files import atomic_write_bytes
from ..report import Table, median_range, median_spread
from ..seeding import keeps_global_rng
from ..settings import PUBLISHED_BENCHMARK, show_progress
from ..train import evaluate
from ..verdicts import paired_seeds
from .baseline import Baseline, get_baseline
from .gan_comparison import UnitBudget, compare_unit_pruning
from .methods import METHODS, simplest_not_behind

__all__ = [
    "CHAPTER_4",
    "CHAPTER_5",
    "FEATURE_NOISE",
    "GRID_METHODS",
    "GRID_SEEDS",
    "GRID_UNITS",
    "GRID_VERSION",
    "QUESTIONS",
    "ROW_FIELDS",
    "SCRATCH",
    "VARIANTS",
    "answer",
    "choice",
    "choice_sentence",
    "check_rows",
    "grid_label",
    "grid_row",
    "grid_table",
    "grid_verdicts",
    "load_rows",
    "row_key",
    "run_grid",
    "variant_budget",
]

GRID_VERSION = 1
GRID_UNITS = (64, 32, 16)
"""Hidden units kept per layer and direction, of the baseline's 128."""
GRID_SEEDS = (0, 1, 2, 3, 4)
SCRATCH = "scratch"
"""The control: an LSTM with that many units trained from scratch (Liu et al. 2019)."""
VARIANTS = {
    "gal_features": ("gal", "GAL, D sees logits + hidden features"),
    "gal_topk": ("gal", "GAL, fixed λ, top-k masks"),
    "gal_no_adv_topk": ("gal_no_adv", "ablation, fixed λ, top-k masks"),
}
"""GAL variants: ``name: (the method it varies, label)``. ``gal_features``: the
discriminator sees the pooled hidden features as well as the logits (a richer signal than
five numbers), with instance noise :data:`FEATURE_NOISE` on the features; ``gal_topk``
and its ablation ``gal_no_adv_topk``: λ stays fixed (no unit budget) and the cut keeps
each slot's ``units`` largest masks, so the size is exact without λ growing."""
FEATURE_NOISE = 0.2
"""Instance noise on the features D sees in ``gal_features``: the logits' noise (2.0) scaled
by how much less the features spread. On the baseline's training articles a logit varies
with std 3.9 over articles, a pooled feature with std 0.34, so 2.0 would drown them."""
GRID_METHODS = (
    "gal",
    "gal_no_adv",
    *VARIANTS,
    "group_lasso",
    "unit_magnitude",
    "unit_taylor",
    "unit_taylor_gate",
    SCRATCH,
)
QUESTIONS = (
    ("gal", "gal_no_adv", "Does the adversarial term help (GAL against its ablation)?"),
    ("gal_features", "gal_no_adv", "Does it help when D also sees the hidden features?"),
    ("gal_topk", "gal_no_adv_topk", "Does it help with a fixed λ and a top-k cut?"),
    ("gal", "unit_magnitude", "Does GAL beat cutting the baseline by group norm?"),
    ("group_lasso", "unit_magnitude", "Does group lasso beat cutting the baseline by norm?"),
    ("group_lasso", SCRATCH, "Does group lasso beat an LSTM of that size trained from scratch?"),
    ("unit_magnitude", SCRATCH, "Does cutting by norm beat training that size from scratch?"),
    (
        "unit_taylor_gate",
        "unit_taylor",
        "Structured Taylor: does the paper's gate form beat the course's group form?",
    ),
)
"""``(A, B, question)``: each asks whether A beats B, per budget, paired by seed."""
CHAPTER_4 = tuple(q for q in QUESTIONS if q[0] in ("group_lasso", "unit_magnitude"))
CHAPTER_5 = tuple(q for q in QUESTIONS if q not in CHAPTER_4)
ROW_FIELDS = {
    "method": str,
    "units": int,
    "seed": int,
    "dense_test": float,
    "test_before": float,
    "valid_accuracy": float,
    "test_accuracy": float,
    "seconds": float,
}
"""The fields every grid row has, with their types (a row may have more)."""
_MAX_ROW_BYTES = 64 << 10
_MAX_BENCH_BYTES = 16 << 20


def grid_label(name: str) -> str:
    """How tables print a grid method."""
    if name == SCRATCH:
        return "LSTM of that size, trained from scratch"
    if name in VARIANTS:
        return VARIANTS[name][1]
    return METHODS[name].long_label


def variant_budget(name: str, budget: UnitBudget) -> tuple[str, UnitBudget]:
    """``(method, budget)`` that :func:`compare_unit_pruning` runs for grid method ``name``."""
    if name not in GRID_METHODS or name == SCRATCH:
        raise ValueError(f"unknown grid method={name!r}; choose from {list(GRID_METHODS[:-1])}")
    if name == "gal_features":
        gal = dataclasses.replace(
            budget.gal, d_input="logits+features", d_feature_noise=FEATURE_NOISE
        )
        return "gal", dataclasses.replace(budget, gal=gal)
    if name in ("gal_topk", "gal_no_adv_topk"):
        return VARIANTS[name][0], dataclasses.replace(budget, gal_budget=False)
    return name, budget


def _scratch_config(baseline: Baseline, units: int):
    return dataclasses.replace(baseline.config, hidden_size=units)


def row_key(name: str, units: int, budget: UnitBudget, baseline: Baseline) -> str:
    """The store key of one row: grid version, method, units, recipe and baseline."""
    fingerprint = baseline.data.fingerprint()
    if name == SCRATCH:
        recipe = {"config": _scratch_config(baseline, units).key(fingerprint, baseline.seed)}
    else:
        method, b = variant_budget(name, dataclasses.replace(budget, units=units))
        recipe = {"method": method, "budget": dataclasses.asdict(b)}
    blob = json.dumps(
        {
            "grid": GRID_VERSION,
            "name": name,
            "units": units,
            "recipe": recipe,
            "baseline": baseline.config.key(fingerprint, baseline.seed),
            "weights": weights_digest(baseline.model),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@keeps_global_rng
def grid_row(
    name: str,
    baseline: Baseline,
    units: int,
    budget: UnitBudget,
    *,
    progress: bool | None = None,
) -> dict:
    """One grid row: ``baseline`` cut to ``units`` units by ``name`` and fine-tuned.

    For :data:`SCRATCH` the row is the small LSTM trained with the baseline's config
    (``get_baseline`` caches it): ``test_before`` is its test accuracy too, and
    ``seconds`` its training time.
    """
    units = positive_int("units", units)
    if name == SCRATCH:
        start = time.perf_counter()
        config = _scratch_config(baseline, units)
        small = get_baseline(config, seed=baseline.seed, progress=progress)
        seconds = small.metrics.get("train_seconds", time.perf_counter() - start)
        test = evaluate(small.model, small.loader("test"))["accuracy"]
        valid = evaluate(small.model, small.loader("valid"))["accuracy"]
        return {
            "method": SCRATCH,
            "sparsity": 1 - units / baseline.model.rnn.hidden_size,
            "units": units,
            "seed": baseline.seed,
            "dense_test": evaluate(baseline.model, baseline.loader("test"))["accuracy"],
            "valid_before": valid,
            "test_before": test,
            "valid_accuracy": valid,
            "test_accuracy": test,
            "kept_epoch": None,
            "seconds": float(seconds),
        }
    method, b = variant_budget(name, dataclasses.replace(budget, units=units))
    row = dict(compare_unit_pruning([baseline], [method], b, progress=progress)[0])
    row["method"] = name
    return row


def check_rows(rows, where: str = "rows") -> list[dict]:
    """``rows`` if every one is a dict with :data:`ROW_FIELDS` of the right types, else
    a ValueError naming ``where`` and the first bad row."""
    if not isinstance(rows, list):
        raise ValueError(f"{where} must be a list of rows, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{where}[{i}] must be a dict, got {type(row).__name__}")
        for field, kind in ROW_FIELDS.items():
            value = row.get(field)
            ok = isinstance(value, kind) and not isinstance(value, bool)
            if kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                ok = ok and math.isfinite(value)
            if not ok:
                raise ValueError(
                    f"{where}[{i}][{field!r}] must be a {kind.__name__}, got {value!r:.40}"
                )
    return rows


def _stored(path: Path, key: str) -> dict | None:
    try:
        if path.stat().st_size > _MAX_ROW_BYTES:
            raise ValueError(f"larger than {_MAX_ROW_BYTES} bytes")
        entry = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entry, dict) or entry.get("key") != key:
            raise ValueError("its key is not this row's")
        return check_rows([entry.get("row")], str(path))[0]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as err:
        warnings.warn(f"Grid row {path} is not usable ({err}); running it again.", stacklevel=3)
        return None


def _store(path: Path, key: str, row: dict) -> None:
    try:
        atomic_write_bytes(path, json.dumps({"key": key, "row": row}, indent=1).encode())
    except OSError as err:
        warnings.warn(f"Grid row not stored in {path.parent} ({err}).", stacklevel=3)


@keeps_global_rng
def run_grid(
    seeds: Sequence[int] = GRID_SEEDS,
    units: Sequence[int] = GRID_UNITS,
    methods: Sequence[str] = GRID_METHODS,
    *,
    budget: UnitBudget | None = None,
    store: str | Path | None = None,
    baseline: Callable[[int], Baseline] | None = None,
    progress: bool | None = None,
    workers: int | None = None,
    threads: int | None = None,
    address: str | None = None,
) -> Table:
    """Every (seed, units, method) row of the grid, read from ``store`` or run and stored.

    ``budget``: the recipe every row shares (its ``units`` is replaced by each of
    ``units``). ``store``: a folder for one JSON file per finished row (None: nothing is
    stored). ``baseline(seed)`` gives each seed's dense model (default
    ``get_baseline(seed=seed)``). Rows come in the order seed, units, method; each also
    says under ``"stored"`` whether it was read from the store.

    ``workers`` above 1 (or an ``address``) runs the missing rows as Ray tasks
    (:mod:`.grid_ray`, the ``scale`` extra), at most ``workers`` at once, on a local Ray
    instance or the cluster at ``address`` (else ``$RAY_ADDRESS``); the baselines are made
    here first. ``threads``: torch threads per row (default: 1 with workers, else this
    process's). A row is the same at the same thread count, whichever way it ran, and a
    store filled one way is resumed the other. A row that ran says under ``"threads"`` at
    how many threads.
    """
    budget = budget or UnitBudget()
    if not isinstance(budget, UnitBudget):
        raise TypeError(f"budget must be a UnitBudget, got {type(budget).__name__}")
    units = [positive_int("units", u) for u in units]
    seeds = [int(s) for s in seeds]
    for name in methods:
        if name not in GRID_METHODS:
            raise ValueError(f"unknown grid method={name!r}; choose from {list(GRID_METHODS)}")
    if not (seeds and units and methods):
        raise ValueError("seeds, units and methods must not be empty")
    workers = 1 if workers is None else positive_int("workers", workers)
    on_ray = workers > 1 or address is not None
    if on_ray:
        from .grid_ray import INSTALL_HINT

        try:
            import ray  # noqa: F401
        except ImportError as err:
            raise ImportError(INSTALL_HINT) from err
    import torch

    threads = positive_int("threads", threads) if threads else None
    used = threads or (1 if on_ray else torch.get_num_threads())
    folder = None if store is None else Path(store)
    make = baseline or (lambda seed: get_baseline(seed=seed, progress=progress))
    from tqdm.auto import tqdm

    show = show_progress() if progress is None else progress
    bar = tqdm(total=len(seeds) * len(units) * len(methods), desc="grid", disable=not show)
    rows, missing = Table(), []  # missing: (index in rows, key, path, args of grid_row)
    for seed in seeds:
        dense = make(seed)
        for u in units:
            for name in methods:
                key = row_key(name, u, budget, dense)
                path = None if folder is None else folder / f"row-{key[:24]}.json"
                row = None if path is None else _stored(path, key)
                rows.append(None if row is None else {**row, "stored": True})
                if row is None:
                    missing.append((len(rows) - 1, key, path, (name, dense, u, budget)))
                else:
                    bar.update()

    def done(i: int, row: dict) -> None:
        index, key, path, _ = missing[i]
        row = {**row, "threads": used}
        if path is not None:
            _store(path, key, row)
        rows[index] = {**row, "stored": False}

    if on_ray and missing:
        from .grid_ray import run_on_ray

        labels = [f"{a[0]}, {a[2]} units, seed {a[1].seed}" for *_, a in missing]
        run_on_ray(
            functools.partial(grid_row, progress=False),
            list(zip(labels, (a for *_, a in missing), strict=True)),
            done,
            workers=workers,
            threads=used,
            address=address,
            bar=bar,
        )
    else:
        before = torch.get_num_threads()
        torch.set_num_threads(used)
        try:
            for i, (*_, args) in enumerate(missing):
                done(i, grid_row(*args, progress=False))
                bar.set_postfix({"finished": i + 1, "remaining": len(missing) - i - 1})
                bar.update()
        finally:
            torch.set_num_threads(before)
    bar.close()
    return rows


def load_rows(
    path: str | Path = PUBLISHED_BENCHMARK, section: str = "sec_05c_unit_grid"
) -> list[dict]:
    """The grid rows that the benchmark published in ``path`` (default
    :data:`course_utils.settings.PUBLISHED_BENCHMARK`).

    The file is read as JSON only (never executed), refused beyond 16 MB, and every row is
    checked with :func:`check_rows`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no published benchmark at {path}: run `make bench BENCH_ARGS=--publish` in the "
            "course folder (about an hour for the grid), or read the numbers in the course's "
            "benchmarks/latest.md"
        )
    if path.stat().st_size > _MAX_BENCH_BYTES:
        raise ValueError(f"{path} is larger than {_MAX_BENCH_BYTES} bytes: not a benchmark file")
    report = json.loads(path.read_text(encoding="utf-8"))
    try:
        rows = report["sections"][section]["results"]["rows"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} has no grid rows under sections.{section}.results") from err
    return check_rows(rows, f"{path.name}: rows")


def grid_table(rows: Sequence[dict], metric: str = "test_accuracy") -> Table:
    """Per method, per budget: ``metric`` in percent as ``median (min-max)`` over seeds."""
    rows = check_rows(list(rows))
    units = sorted({r["units"] for r in rows}, reverse=True)
    table = Table()
    for name in dict.fromkeys(r["method"] for r in rows):
        line = {"method": grid_label(name)}
        for u in units:
            values = [100 * r[metric] for r in rows if r["method"] == name and r["units"] == u]
            line[f"{u} units"] = median_range(median_spread(values)) if values else ""
        line["seeds"] = len({r["seed"] for r in rows if r["method"] == name})
        table.append(line)
    return table


def grid_verdicts(
    rows: Sequence[dict],
    questions: Sequence[tuple[str, str, str]] = QUESTIONS,
    metric: str = "test_accuracy",
) -> Table:
    """Each question, per budget: A against B paired by seed, with the bootstrap interval.

    One row per (question, units) where both methods have rows: medians of A and B, the
    median paired difference and its 95 % interval (points), the number of seeds, the sign
    test's p-value over the seeds (how rare their agreement would be by chance) and the
    verdict ("better", "no clear difference", "worse", or "one seed").
    """
    rows = check_rows(list(rows))
    table = Table()
    for a, b, question in questions:
        for u in sorted({r["units"] for r in rows}, reverse=True):
            va = {r["seed"]: r[metric] for r in rows if r["method"] == a and r["units"] == u}
            vb = {r["seed"]: r[metric] for r in rows if r["method"] == b and r["units"] == u}
            if not set(va) & set(vb):
                continue
            v = paired_seeds(va, vb)
            table.append(
                {
                    "question": question,
                    "a": a,
                    "b": b,
                    "units": u,
                    "seeds": len(v.seeds),
                    "median a": 100 * statistics.median(va[s] for s in v.seeds),
                    "median b": 100 * statistics.median(vb[s] for s in v.seeds),
                    "difference": 100 * v.median_difference,
                    "interval": f"{100 * v.low:+.1f} to {100 * v.high:+.1f}",
                    "sign test p": v.p_value,
                    "verdict": v.verdict,
                }
            )
    return table


def _effort(name: str) -> int:
    """What a grid method adds to plain fine-tuning (:attr:`Method.effort`); a variant
    costs what the method it varies costs."""
    return METHODS[VARIANTS[name][0] if name in VARIANTS else name].effort


def choice(rows: Sequence[dict], metric: str = "test_accuracy") -> Table:
    """Per budget, which pruning method to use: the simplest that no other clearly beats.

    The method with the best median ``metric`` is the reference; every other pruning
    method is compared with it seed by seed (:func:`~course_utils.verdicts.paired_seeds`);
    among those not clearly behind it ("worse"), the one of least effort is chosen (a
    simpler method that is as good wins). The from-scratch control is not a pruning
    method: its row says how it compares with the chosen one.
    """
    rows = check_rows(list(rows))
    table = Table()
    for u in sorted({r["units"] for r in rows}, reverse=True):
        scores = {}
        for r in rows:
            if r["units"] == u:
                scores.setdefault(r["method"], {})[r["seed"]] = r[metric]
        pruning = [m for m in scores if m != SCRATCH]
        if not pruning:
            continue
        medians = {m: statistics.median(v.values()) for m, v in scores.items()}
        best, behind, simplest = simplest_not_behind(
            {m: medians[m] for m in pruning},
            lambda m, best, s=scores: paired_seeds(s[m], s[best]).verdict == "worse",
            _effort,
        )
        line = {
            "units": u,
            "best": best,
            "best median": 100 * medians[best],
            "clearly behind": behind,
            "simplest not behind": simplest,
            "simplest median": 100 * medians[simplest],
        }
        if SCRATCH in scores:
            line["from scratch"] = paired_seeds(scores[simplest], scores[SCRATCH]).verdict
        table.append(line)
    return table


def choice_sentence(line: dict) -> str:
    """One line of :func:`choice` in words."""
    behind = ", ".join(grid_label(m) for m in line["clearly behind"]) or "none"
    text = (
        f"{line['units']} units: best median {grid_label(line['best'])} "
        f"{line['best median']:.1f} %; clearly behind it: {behind}; the simplest method not "
        f"clearly behind: {grid_label(line['simplest not behind'])} "
        f"({line['simplest median']:.1f} %)"
    )
    if "from scratch" in line:
        text += f"; against an LSTM of that size trained from scratch: {line['from scratch']}"
    return text + "."


def answer(verdicts: Sequence[dict], question: str) -> str:
    """One sentence for ``question`` over every budget, computed from :func:`grid_verdicts`."""
    mine = [v for v in verdicts if v["question"] == question]
    if not mine:
        raise ValueError(f"no verdict rows for question {question!r}")
    a, b = grid_label(mine[0]["a"]), grid_label(mine[0]["b"])
    counts = {k: sum(v["verdict"] == k for v in mine) for k in ("better", "worse")}
    if counts["better"] == len(mine):
        head = f"yes, at every budget: {a} beats {b}"
    elif counts["worse"] == len(mine):
        head = f"no: {a} is worse than {b} at every budget"
    elif counts["better"] or counts["worse"]:
        head = (
            f"only at some budgets: {a} is better at {counts['better']} and worse at "
            f"{counts['worse']} of {len(mine)}"
        )
    else:
        head = f"not measurably: no clear difference between {a} and {b} at any budget"
    parts = "; ".join(
        f"{v['units']} units: {v['difference']:+.1f} points ({v['interval']}), {v['verdict']}"
        for v in mine
    )
    return (
        f"{question} {head}. Median paired difference over {mine[0]['seeds']} seeds, 95 % "
        f"bootstrap interval: {parts}."
    )
