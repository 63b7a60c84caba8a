"""Every chapter's pruning method applied once to a cached baseline, and cached itself.

Introduced in chapter 6, which compares all methods side by side. ``pruned_model(method,
amount, seed=...)`` prunes and fine-tunes a copy of ``get_baseline(seed=...)`` with the
recipe of the chapter that teaches the method, or loads the result from the cache. The
cache works like the baseline's: one safetensors checkpoint per (method, amount, recipe,
baseline weights, data, seed), written atomically with its SHA-256 inside and loaded
without unpickling anything; a corrupt, refused or stale file is rebuilt with a warning,
and a cache folder that cannot be written costs a warning, never the pruned model.

Methods (names from :mod:`course_utils.experiments.methods`; ``amount`` is a sparsity for
unstructured methods, hidden units kept for structured ones):

- ``"magnitude_oneshot"``, ``"magnitude_agp"``: chapter 2 (|w|, one global threshold);
- ``"taylor"``, ``"movement"``, ``"snip"``: chapter 3, with the budget of its comparison
  (:func:`~course_utils.experiments.comparison.prune_by_criterion`); SNIP ranks all
  tensors together, as in the paper;
- ``"group_lasso"``: chapter 4 (ISS group lasso, remove units, fine-tune);
- ``"gal"``: chapter 5 (GAN-guided masks, remove units, fine-tune), as in its comparison
  (:func:`~course_utils.experiments.gan_comparison.prune_to_units`).

Budgets: ``"full"`` is each chapter's recipe (and its benchmark's); ``"short"`` trains
less (chapter 6's notebook); ``"tiny"`` sees only a few batches per epoch (fast mode).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoints import load_cached, save_cached, weights_digest
from ..checks import finite_numbers, fraction, integer
from ..masking import get_masks, remove_masks
from ..models import RNNClassifier
from ..pruning.criteria import SNIP_SCOPES
from ..pruning.gan import CachedTeacher
from ..pruning.schedules import agp_pruning, one_shot_pruning
from ..seeding import keeps_global_rng
from ..settings import cache_dir as default_cache_dir
from ..train import evaluate
from .baseline import Baseline, get_baseline
from .comparison import FineTuneBudget, prune_by_criterion
from .gan_comparison import UnitBudget, finetune_pruned, prune_to_units
from .methods import METHODS, get_method

__all__ = [
    "BUDGETS",
    "GAL_EPOCHS",
    "LINEUP",
    "STRUCTURED",
    "STRUCTURED_FT_EPOCHS",
    "UNSTRUCTURED",
    "RACE",
    "SMALL_UNITS",
    "WARM_BASELINES",
    "WARM_SEEDS",
    "ZOO_METHODS",
    "PrunedModel",
    "lineup_models",
    "pareto_front",
    "pruned_model",
    "recipe",
    "warm_cache",
]

ZOO_VERSION = 3
BUDGETS = ("full", "short", "tiny")
LINEUP = (
    ("magnitude_oneshot", 0.9, False),
    ("magnitude_agp", 0.9, False),
    ("taylor", 0.9, False),
    ("movement", 0.9, False),
    ("snip", 0.9, False),
    ("group_lasso", 32, False),
    ("gal", 32, False),
    ("magnitude_agp", 0.9, True),
)
"""Chapter 6's comparison: ``(method, amount, include_embedding)`` for each model."""

# Each recipe is its chapter's: chapter 3's FineTuneBudget for Taylor, movement and SNIP,
# chapter 5's UnitBudget for group lasso and GAL, except for these two numbers.
STRUCTURED_FT_EPOCHS = 1
"""Fine-tuning epochs of the zoo's structured models; chapter 5's comparison gives two."""
GAL_EPOCHS = 3
"""GAL's epochs in the zoo, as in chapter 5's notebook; ``GALConfig()`` (the benchmark's)
trains four."""

_CH3, _CH5 = FineTuneBudget(), UnitBudget()
_GRADUAL = {
    "epochs": _CH3.epochs,
    "lr": _CH3.lr,
    "warmup": _CH3.warmup,
    "ramp_end": _CH3.ramp_end,
    "frequency": _CH3.frequency,
}
_FULL = {
    "magnitude_oneshot": {"epochs": 3, "lr": 1e-3, "scope": "global"},
    "magnitude_agp": {
        "epochs": 6,
        "prune_epochs": 4,
        "frequency": 10,
        "lr": 1e-3,
        "scope": "global",
    },
    "taylor": {**_GRADUAL, "scope": "layerwise"},
    "movement": {**_GRADUAL, "scope": "layerwise"},
    "snip": {
        "epochs": _CH3.scratch_epochs,
        "lr": _CH3.scratch_lr,
        "scope": SNIP_SCOPES["snip"],  # the paper's: one ranking over all tensors
        "batch_size": _CH3.snip_batch_size,
    },
    "group_lasso": {
        "lam": _CH5.gl_lambda,
        "gl_epochs": _CH5.gl_epochs,
        "ft_epochs": STRUCTURED_FT_EPOCHS,
        "ft_lr": _CH5.ft_lr,
    },
    "gal": {"gal_epochs": GAL_EPOCHS, "ft_epochs": STRUCTURED_FT_EPOCHS, "ft_lr": _CH5.ft_lr},
}
_SHORTER = {
    "magnitude_oneshot": {"epochs": 1},
    "magnitude_agp": {"epochs": 3, "prune_epochs": 2},
    "snip": {"epochs": 3},
}
ZOO_METHODS = tuple(_FULL)
"""The methods the zoo has a recipe for."""
UNSTRUCTURED = tuple(m for m in ZOO_METHODS if METHODS[m].kind == "unstructured")
STRUCTURED = tuple(m for m in ZOO_METHODS if METHODS[m].kind == "structured")


def recipe(method: str, budget: str = "full") -> dict:
    """The training recipe of ``method`` under ``budget`` (``None``: the baseline's value).

    ``"full"``: the chapter's recipe (SNIP trains the baseline's epochs + 1 at its lr);
    ``"short"``: fewer epochs; ``"tiny"``: short, and each epoch sees 8 batches.
    """
    get_method(method, ZOO_METHODS)
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget={budget!r}; choose from {list(BUDGETS)}")
    out = dict(_FULL[method])
    if budget != "full":
        out.update(_SHORTER.get(method, {}))
    out["train_batches"] = 8 if budget == "tiny" else None
    return out


def _check_amount(method: str, amount, hidden: int) -> float | int:
    name = f"amount for {method!r}"
    if METHODS[method].kind == "structured":
        return integer(
            name,
            amount,
            minimum=1,
            maximum=hidden,
            allowed=f"the number of hidden units kept: an int in [1, {hidden}]",
        )
    return fraction(name, amount, low_open=True, what="a sparsity")


@dataclass
class PrunedModel:
    """A pruned, fine-tuned model and how it was made.

    ``model`` is in eval mode with its pruning made permanent (exact zeros, no mask
    buffers; structured methods return a smaller model). ``metrics``: ``valid_accuracy``,
    ``test_accuracy``, ``dense_test_accuracy`` (the same seed's baseline) and
    ``train_seconds`` (of the run that built it, even when loaded from the cache).
    """

    method: str
    amount: float | int
    seed: int
    include_embedding: bool
    budget: str
    recipe: dict
    model: RNNClassifier
    metrics: dict = field(default_factory=dict)
    from_cache: bool = False

    @property
    def structured(self) -> bool:
        return METHODS[self.method].kind == "structured"

    @property
    def label(self) -> str:
        name = METHODS[self.method].label
        if self.structured:
            return f"{name}, {self.amount} units"
        where = ", embedding too" if self.include_embedding else ""
        return f"{name} {100 * self.amount:g} %{where}"


# --- building each method -------------------------------------------------------------------


def _chapter3_budget(method: str, rec: dict) -> FineTuneBudget:
    """The recipe as chapter 3's budget (for the magnitude methods: only its data)."""
    if method == "snip":
        return FineTuneBudget(
            scratch_epochs=rec["epochs"],
            scratch_lr=rec["lr"],
            snip_batch_size=rec["batch_size"],
            train_batches=rec["train_batches"],
        )
    if method in ("taylor", "movement"):
        return FineTuneBudget(**{k: rec[k] for k in _GRADUAL}, train_batches=rec["train_batches"])
    return FineTuneBudget(train_batches=rec["train_batches"])


def _unstructured(method, baseline, sparsity, rec, include_embedding, seed, progress):
    budget = _chapter3_budget(method, rec)
    if method in ("taylor", "movement", "snip"):
        criterion = method
        if method == "snip":  # chapter 3's SNIP criterion that ranks with the recipe's scope
            criterion = next(c for c, scope in SNIP_SCOPES.items() if scope == rec["scope"])
        model, _ = prune_by_criterion(
            baseline,
            criterion,
            sparsity,
            budget,
            scope=rec["scope"],
            include_embedding=include_embedding,
            progress=progress,
        )
        return model
    data = budget.data(baseline, seed)
    common = {"scope": rec["scope"], "include_embedding": include_embedding, "seed": seed}
    model = baseline.copy_model()
    if method == "magnitude_oneshot":
        one_shot_pruning(
            model, data, sparsity, epochs=rec["epochs"], lr=rec["lr"], progress=progress, **common
        )
    else:
        agp_pruning(
            model,
            data,
            sparsity,
            epochs=rec["epochs"],
            prune_epochs=rec["prune_epochs"],
            frequency=rec["frequency"],
            lr=rec["lr"],
            progress=progress,
            **common,
        )
    return model


def _unit_budget(units: int, rec: dict, seed: int) -> UnitBudget:
    """The recipe as chapter 5's budget; what the recipe leaves out keeps its defaults."""
    return UnitBudget(
        units=units,
        gal=dataclasses.replace(_CH5.gal, epochs=rec.get("gal_epochs", GAL_EPOCHS), seed=seed),
        gl_lambda=rec.get("lam", _CH5.gl_lambda),
        gl_epochs=rec.get("gl_epochs", _CH5.gl_epochs),
        ft_epochs=rec["ft_epochs"],
        ft_lr=rec["ft_lr"],
        distill=True,
        train_batches=rec["train_batches"],
    )


def _structured(method, baseline, units, rec, seed, progress):
    budget = _unit_budget(units, rec, seed)
    cache = CachedTeacher(baseline.model.eval())
    model, _ = prune_to_units(method, baseline, budget, cache=cache, progress=progress)
    finetune_pruned(
        model,
        budget.data(baseline),
        epochs=budget.ft_epochs,
        lr=budget.ft_lr,
        teacher=cache,
        seed=seed,
        progress=progress,
    )
    return model


def _built(method, amount, rec, include_embedding, baseline: Baseline, progress):
    """Prune and fine-tune, make the pruning permanent, measure: ``(model, metrics)``."""
    seed = baseline.seed
    start = time.perf_counter()
    if METHODS[method].kind == "structured":
        model = _structured(method, baseline, amount, rec, seed, progress)
    else:
        model = _unstructured(method, baseline, amount, rec, include_embedding, seed, progress)
    seconds = time.perf_counter() - start
    if get_masks(model):
        remove_masks(model)
    model.eval()
    metrics = {
        "valid_accuracy": evaluate(model, baseline.loader("valid"))["accuracy"],
        "test_accuracy": evaluate(model, baseline.loader("test"))["accuracy"],
        "dense_test_accuracy": baseline.metrics["test_accuracy"],
        "train_seconds": seconds,
    }
    return model, metrics


def _resolved(method: str, budget: str, baseline: Baseline) -> dict:
    rec = recipe(method, budget)
    if method == "snip":
        rec["epochs"] = rec["epochs"] or baseline.config.epochs + 1
        rec["lr"] = rec["lr"] or baseline.config.lr
    return rec


def _key(method, amount, rec, include_embedding, baseline: Baseline) -> str:
    blob = json.dumps(
        {
            "zoo": ZOO_VERSION,
            "method": method,
            "amount": amount,
            "recipe": rec,
            "include_embedding": include_embedding,
            "baseline": baseline.config.key(baseline.data.fingerprint(), baseline.seed),
            "baseline_weights": weights_digest(baseline.model),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _from_cache(path: Path, key: str, device: torch.device) -> tuple | None:
    """``(model, metrics)`` from the cache file, or None (missing, stale or unusable)."""
    found = load_cached(
        path, key, what="Pruned-model", stale="with another recipe, baseline or data"
    )
    if found is None:
        return None
    model, extra = found
    if not isinstance(extra.get("metrics"), dict):
        warnings.warn(
            f"Pruned-model cache {path} is not usable: it has no metrics. Rebuilding it.",
            stacklevel=3,
        )
        return None
    return model.to(device).eval(), extra["metrics"]


@keeps_global_rng
def pruned_model(
    method: str,
    amount: float | int,
    *,
    seed: int = 0,
    budget: str = "full",
    include_embedding: bool = False,
    baseline: Baseline | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
) -> PrunedModel:
    """Prune ``get_baseline(seed=seed)`` with ``method`` to ``amount``, or load it from cache.

    ``amount``: the sparsity (a fraction in (0, 1)) of the pruned tensors for
    unstructured methods, with the embedding among them when ``include_embedding``;
    hidden units kept for structured ones. ``budget``: ``"full"``, ``"short"`` or
    ``"tiny"`` (:func:`recipe`). ``baseline`` (optional) is the already loaded
    ``get_baseline(seed=seed)``. Returns a :class:`PrunedModel`; the baseline is not changed.
    """
    get_method(method, ZOO_METHODS)
    if METHODS[method].kind == "structured" and include_embedding:
        raise ValueError(f"include_embedding applies to unstructured methods, not {method!r}")
    if baseline is None:
        baseline = get_baseline(seed=seed, progress=progress)
    elif baseline.seed != seed:
        raise ValueError(f"baseline has seed {baseline.seed}, but seed={seed} was asked for")
    amount = _check_amount(method, amount, baseline.model.rnn.hidden_size)
    embedding = bool(include_embedding)
    rec = _resolved(method, budget, baseline)
    key = _key(method, amount, rec, embedding, baseline)
    path = Path(cache_dir or default_cache_dir()) / f"pruned-{method}-{key[:20]}.safetensors"
    made = functools.partial(PrunedModel, method, amount, seed, embedding, budget, rec)
    found = _from_cache(path, key, next(baseline.model.parameters()).device) if cache else None
    if found is not None:
        model, metrics = found
        return made(model=model, metrics=metrics, from_cache=True)
    model, metrics = _built(method, amount, rec, include_embedding, baseline, progress)
    if cache:
        save_cached(path, copy.deepcopy(model).cpu(), what="Pruned-model", key=key, metrics=metrics)
    return made(model=model, metrics=metrics, from_cache=False)


@keeps_global_rng
def lineup_models(
    *,
    seed: int = 0,
    budget: str = "short",
    baseline: Baseline | None = None,
    progress: bool | None = None,
) -> list[PrunedModel]:
    """Every model of :data:`LINEUP` (chapter 6's comparison), built or loaded from cache.

    ``make warm`` calls this with the notebook's ``"short"`` budget, so that chapter 6
    only loads its models in class.
    """
    if baseline is None:
        baseline = get_baseline(seed=seed, progress=progress)
    return [
        pruned_model(
            method,
            amount,
            seed=seed,
            budget=budget,
            include_embedding=embedding,
            baseline=baseline,
            progress=progress,
        )
        for method, amount, embedding in LINEUP
    ]


WARM_SEEDS = (0, 1, 2)
"""The baseline seeds chapter 5 compares (seed 0 is every chapter's baseline)."""
RACE = {"epochs": 4, "max_len": 200, "patience": None}
"""Chapter 1's race of the three cells (RNN, LSTM, GRU): a short, equal budget."""
SMALL_UNITS = 32
"""Chapter 4's reference: an LSTM with this many hidden units, trained from scratch."""
WARM_BASELINES = (
    *({"seed": 0, "cell": cell, **RACE} for cell in ("rnn", "lstm", "gru")),
    *({"seed": seed} for seed in WARM_SEEDS),
    {"seed": 0, "hidden_size": SMALL_UNITS},
)
"""Every ``get_baseline`` the chapters call in full mode: chapter 1's race and baseline,
chapter 5's other seeds and chapter 4's small LSTM."""


@keeps_global_rng
def warm_cache(*, progress: bool | None = None) -> list[PrunedModel]:
    """Train and cache every model the chapters load: :data:`WARM_BASELINES` and chapter
    6's line-up (``"short"`` budget). ``python -m course_utils warm`` (and ``make warm``)
    runs it before a class, so that no chapter trains a cached model in class. Returns
    the line-up; everything already cached is only loaded.
    """
    for overrides in WARM_BASELINES:
        get_baseline(progress=progress, **overrides)
    return lineup_models(seed=0, budget="short", progress=progress)


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats: none has a cost at most as high AND a
    score at least as high, with one of the two strictly better. Sorted by cost.

    For accuracy against size or latency: the models worth considering. A NaN or
    infinite cost or score (a failed measurement) is refused with a ValueError naming
    it, since no point could be compared with it.
    """
    costs, scores = finite_numbers("costs", costs), finite_numbers("scores", scores)
    if len(costs) != len(scores):
        raise ValueError(f"costs and scores differ in length: {len(costs)} and {len(scores)}")
    points = list(zip(costs, scores, strict=True))
    front = [
        i
        for i, (c, s) in enumerate(points)
        if not any(
            c2 <= c and s2 >= s and (c2 < c or s2 > s)
            for j, (c2, s2) in enumerate(points)
            if j != i
        )
    ]
    return sorted(front, key=lambda i: (costs[i], -scores[i]))
