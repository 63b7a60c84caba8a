"""When unstructured sparsity pays on a CPU: the crossover map of chapter 6.

For each sparsity, the baseline's recurrent and classifier matrices are pruned by
magnitude (each to that sparsity, the embedding dense), and three models are timed in the
same run, in interleaved rounds (:func:`~course_utils.measure.compare_latency`):

- the **dense masked** model: PyTorch's fused kernel multiplying the zeros;
- the **sparse path** (:class:`~course_utils.deploy.sparse.SparseRNN`): the same weights
  in CSR form, the recurrence written out step by step;
- the **structured** model with about the same number of recurrent weights: the baseline
  cut to fewer hidden units (chapter 4's surgery), so that ``4h(E + h)`` matches the
  pruned model's non-zeros.

The speed-ups are the dense masked model's time divided by each one's. Read them with
:func:`~course_utils.verdicts.speed`'s margin: within 1 +/- 0.2 one run cannot tell.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

from ..checks import integer
from ..deploy.sparse import SparseRNN, recurrent_density
from ..masking import check_sparsity
from ..measure import compare_latency
from ..models import RNNClassifier
from ..pruning import prune, remove_hidden_units, select_units_by_norm
from ..report import Table
from ..verdicts import speed

__all__ = ["crossover_map", "matching_units", "smallest_paying"]


def matching_units(model: RNNClassifier, density: float) -> int:
    """Hidden units of a one-layer, one-direction model whose recurrent matrices
    (``4h x E`` and ``4h x h``) hold about ``density`` times the dense model's weights."""
    if model.rnn.num_layers != 1 or model.rnn.bidirectional:
        raise ValueError("matching_units is for a one-layer, one-direction model")
    e, h = model.rnn.input_size, model.rnn.hidden_size
    target = density * h * (e + h)  # h' (e + h') = density * h (e + h)
    return max(1, min(h, round((-e + math.sqrt(e * e + 4 * target)) / 2)))


def crossover_map(
    model: RNNClassifier,
    sparsities: Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99),
    batch_sizes: Sequence[int] = (1, 8, 64),
    threads: Sequence[int] = (1, 2),
    *,
    seq_len: int = 400,
    rounds: int = 3,
    repeats: int = 5,
) -> Table:
    """One row per (threads, sparsity, batch size): the three models' milliseconds and the
    speed-ups of the sparse path and of the structured model over the dense masked one.

    ``model`` (the dense baseline) is not changed. Pruning is layer-wise magnitude on the
    recurrent and classifier matrices (the embedding stays dense, as chapters 2-4 prune).
    """
    if not isinstance(model, RNNClassifier):
        raise TypeError(f"model must be an RNNClassifier, got {type(model).__name__}")
    sparsities = [check_sparsity(s) for s in sparsities]
    batch_sizes = [integer("batch size", b, minimum=1) for b in batch_sizes]
    threads = [integer("threads", t, minimum=1) for t in threads]
    if not sparsities or not batch_sizes or not threads:
        raise ValueError("sparsities, batch_sizes and threads must not be empty")
    rows = Table()
    for sparsity in sparsities:
        masked = copy.deepcopy(model).eval()
        prune(masked, sparsity)
        density = recurrent_density(masked)
        units = matching_units(model, density)
        structured = remove_hidden_units(model, select_units_by_norm(model, units)).eval()
        models = {"dense": masked, "sparse": SparseRNN(masked), "structured": structured}
        for n_threads in threads:
            ms = compare_latency(
                models,
                seq_len=seq_len,
                batch_sizes=batch_sizes,
                rounds=rounds,
                repeats=repeats,
                threads=n_threads,
            )
            for bs in batch_sizes:
                rows.append(
                    {
                        "threads": n_threads,
                        "sparsity": sparsity,
                        "batch": bs,
                        "dense masked ms": ms["dense"][bs],
                        "sparse path ms": ms["sparse"][bs],
                        "sparse speed-up": ms["dense"][bs] / ms["sparse"][bs],
                        "structured units": units,
                        "structured ms": ms["structured"][bs],
                        "structured speed-up": ms["dense"][bs] / ms["structured"][bs],
                    }
                )
    return rows


def smallest_paying(rows: Sequence[dict], *, batch: int, threads: int) -> float | None:
    """The smallest sparsity of the map at which the sparse path is "faster" than the dense
    masked model (:func:`~course_utils.verdicts.speed`: a speed-up above 1.2) for this
    batch size and thread count, or ``None`` when it never is."""
    paying = [
        r["sparsity"]
        for r in rows
        if r["batch"] == batch
        and r["threads"] == threads
        and speed(r["sparse speed-up"]) == "faster"
    ]
    return min(paying) if paying else None
