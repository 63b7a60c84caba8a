"""Every chapter's pruning method applied once to a cached baseline, and cached itself.

Introduced in chapter 6, which compares all methods side by side. ``pruned_model(method,
amount, seed=...)`` prunes and fine-tunes a copy of ``get_baseline(seed=...)`` with the
recipe of the chapter that teaches the method, or loads the result from the cache. The
cache works like the baseline's: one safetensors checkpoint per (method, amount, recipe,
baseline weights, data, seed), written atomically with its SHA-256 inside and loaded
without unpickling anything; a corrupt, refused or stale file is rebuilt with a warning,
and a cache folder that cannot be written costs a warning, never the pruned model.

Methods (``amount`` is a sparsity for unstructured methods, hidden units kept for
structured ones):

- ``"magnitude_oneshot"``, ``"magnitude_agp"``: chapter 2 (|w|, one global threshold);
- ``"taylor"``, ``"movement"``: chapter 3's gradual pruning with that criterion;
- ``"snip"``: chapter 3's SNIP (prune the initialization, train from scratch);
- ``"group_lasso"``: chapter 4 (ISS group lasso, remove units, fine-tune);
- ``"gal"``: chapter 5 (GAN-guided masks, remove units, fine-tune).

Budgets: ``"full"`` is each chapter's recipe (and its benchmark's); ``"short"`` trains
less (chapter 6's notebook); ``"tiny"`` sees only a few batches per epoch (fast mode).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoints import load_cached, save_cached
from ..checks import finite_numbers
from ..models import RNNClassifier
from ..seeding import keeps_global_rng
from ..settings import cache_dir as default_cache_dir
from ..train import evaluate
from .baseline import Baseline, get_baseline

ZOO_VERSION = 3
UNSTRUCTURED = ("magnitude_oneshot", "magnitude_agp", "taylor", "movement", "snip")
STRUCTURED = ("group_lasso", "gal")
METHODS = UNSTRUCTURED + STRUCTURED
BUDGETS = ("full", "short", "tiny")
METHOD_LABELS = {
    "magnitude_oneshot": "magnitude one-shot",
    "magnitude_agp": "magnitude AGP",
    "taylor": "Taylor",
    "movement": "movement",
    "snip": "SNIP",
    "group_lasso": "group lasso",
    "gal": "GAN-guided (GAL)",
}
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
_GRADUAL = {"epochs": 1, "lr": 1e-3, "warmup": 0.1, "ramp_end": 0.7, "frequency": 5}
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
    "snip": {"epochs": None, "lr": None, "scope": "layerwise", "batch_size": 64},
    "group_lasso": {"lam": 0.05, "gl_epochs": 2, "ft_epochs": 1, "ft_lr": 1e-3},
    "gal": {"gal_epochs": 3, "ft_epochs": 1, "ft_lr": 1e-3},
}
_SHORTER = {
    "magnitude_oneshot": {"epochs": 1},
    "magnitude_agp": {"epochs": 3, "prune_epochs": 2},
    "snip": {"epochs": 3},
}


def recipe(method: str, budget: str = "full") -> dict:
    """The training recipe of ``method`` under ``budget`` (``None``: the baseline's value).

    ``"full"``: the chapter's recipe (SNIP trains the baseline's epochs + 1 at its lr);
    ``"short"``: fewer epochs; ``"tiny"``: short, and each epoch sees 8 batches.
    """
    _check_method(method)
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget={budget!r}; choose from {list(BUDGETS)}")
    out = dict(_FULL[method])
    if budget != "full":
        out.update(_SHORTER.get(method, {}))
    out["train_batches"] = 8 if budget == "tiny" else None
    return out


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method={method!r}; choose from {list(METHODS)}")
    return method


def _check_amount(method: str, amount, hidden: int):
    if method in STRUCTURED:
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= hidden:
            raise ValueError(
                f"amount for {method!r} is the number of hidden units kept: an int in "
                f"[1, {hidden}], got {amount!r}"
            )
        return amount
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 < amount < 1:
        raise ValueError(f"amount for {method!r} is a sparsity in (0, 1), got {amount!r}")
    return float(amount)


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
        return self.method in STRUCTURED

    @property
    def label(self) -> str:
        name = METHOD_LABELS[self.method]
        if self.structured:
            return f"{name}, {self.amount} units"
        where = ", embedding too" if self.include_embedding else ""
        return f"{name} {100 * self.amount:g} %{where}"


# --- building each method -------------------------------------------------------------------


def _first_batches(baseline: Baseline, count: int | None, seed: int):
    if count is None:
        return baseline
    batches = []
    for batch in baseline.loader("train", seed=seed):
        if len(batches) == count:
            break
        batches.append(batch)
    return batches, baseline.loader("valid")


def _unstructured(method, baseline, sparsity, rec, include_embedding, seed, progress):
    from ..pruning import agp_pruning, one_shot_pruning
    from ..pruning.criteria import first_batch, gradual_pruning, snip_pruning

    data = _first_batches(baseline, rec["train_batches"], seed)
    common = {"scope": rec["scope"], "include_embedding": include_embedding, "seed": seed}
    if method == "snip":
        model = baseline.initial_model()
        batch = first_batch(baseline, rec["batch_size"], seed)
        snip_pruning(
            model,
            data,
            sparsity,
            epochs=rec["epochs"],
            lr=rec["lr"],
            batch=batch,
            progress=progress,
            **common,
        )
        return model
    model = baseline.copy_model()
    if method == "magnitude_oneshot":
        one_shot_pruning(
            model, data, sparsity, epochs=rec["epochs"], lr=rec["lr"], progress=progress, **common
        )
    elif method == "magnitude_agp":
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
    else:
        gradual_pruning(
            model,
            data,
            sparsity,
            criterion=method,
            epochs=rec["epochs"],
            lr=rec["lr"],
            warmup=rec["warmup"],
            ramp_end=rec["ramp_end"],
            frequency=rec["frequency"],
            progress=progress,
            **common,
        )
    return model


def _structured(method, baseline, units, rec, seed, progress):
    from ..pruning.gan import GALConfig
    from .gan_comparison import CachedTeacher, UnitBudget, finetune_pruned, prune_to_units

    budget = UnitBudget(
        units=units,
        gal=dataclasses.replace(GALConfig(), epochs=rec.get("gal_epochs", 3), seed=seed),
        gl_lambda=rec.get("lam", 0.05),
        gl_epochs=rec.get("gl_epochs", 2),
        ft_epochs=rec["ft_epochs"],
        ft_lr=rec["ft_lr"],
        distill=True,
        train_batches=rec["train_batches"],
    )
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
            "baseline_weights": _weights_digest(baseline.model),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _weights_digest(model: RNNClassifier) -> str:
    """SHA-256 of the model's parameters and buffers: a retrained baseline is another key."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


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
    _check_method(method)
    if method in STRUCTURED and include_embedding:
        raise ValueError(f"include_embedding applies to unstructured methods, not {method!r}")
    if baseline is None:
        baseline = get_baseline(seed=seed, progress=progress)
    elif baseline.seed != seed:
        raise ValueError(f"baseline has seed {baseline.seed}, but seed={seed} was asked for")
    amount = _check_amount(method, amount, baseline.model.rnn.hidden_size)
    rec = _resolved(method, budget, baseline)
    key = _key(method, amount, rec, bool(include_embedding), baseline)
    path = Path(cache_dir or default_cache_dir()) / f"pruned-{method}-{key[:20]}.safetensors"
    device = next(baseline.model.parameters()).device
    info = dict(
        method=method,
        amount=amount,
        seed=seed,
        include_embedding=bool(include_embedding),
        budget=budget,
        recipe=rec,
    )
    found = (
        load_cached(path, key, what="Pruned-model", stale="with another recipe, baseline or data")
        if cache
        else None
    )
    if found is not None:
        model, extra = found
        if isinstance(extra.get("metrics"), dict):
            return PrunedModel(
                **info, model=model.to(device).eval(), metrics=extra["metrics"], from_cache=True
            )
        warnings.warn(
            f"Pruned-model cache {path} is not usable: it has no metrics. Rebuilding it.",
            stacklevel=2,
        )
    from ..pruning import get_masks, remove_masks

    start = time.perf_counter()
    if method in STRUCTURED:
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
    if cache:
        save_cached(path, copy.deepcopy(model).cpu(), what="Pruned-model", key=key, metrics=metrics)
    return PrunedModel(**info, model=model, metrics=metrics, from_cache=False)


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


@keeps_global_rng
def warm_cache(*, progress: bool | None = None) -> list[PrunedModel]:
    """Train and cache what the chapters after chapter 1 load: the baselines of
    :data:`WARM_SEEDS` and chapter 6's line-up (``"short"`` budget). ``make warm`` runs it
    after chapter 1, so that no chapter trains a baseline or a line-up model in class.
    Returns the line-up; everything already cached is only loaded.
    """
    for seed in WARM_SEEDS:
        get_baseline(seed=seed, progress=progress)
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


__all__ = [
    "BUDGETS",
    "LINEUP",
    "METHODS",
    "METHOD_LABELS",
    "PrunedModel",
    "STRUCTURED",
    "UNSTRUCTURED",
    "WARM_SEEDS",
    "lineup_models",
    "pareto_front",
    "pruned_model",
    "recipe",
    "warm_cache",
]
