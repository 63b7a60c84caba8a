"""Small builders and assertions shared by several test modules."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from hypothesis import strategies as st
from notebook_tools import cell_source, is_solution

from course_utils.models import CELLS, POOLINGS, RNNClassifier
from course_utils.pruning import get_masks, prune, remove_masks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
"""The chapter notebooks, in order."""


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """True when two models hold bit-identical state (parameters and buffers)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def zeros_stay_zero(model: torch.nn.Module) -> bool:
    """True when every weight a mask prunes is exactly zero."""
    params = dict(model.named_parameters())
    return all(bool((params[n][~m] == 0).all()) for n, m in get_masks(model).items())


def padded_batch(lengths=(7, 3, 5, 1), *, vocab: int = 30, seed: int = 0) -> tuple:
    """Random token ids in [1, vocab), zero-padded after each length: ``(tokens, lengths)``."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    tokens = torch.randint(1, vocab, (len(lengths), int(lengths.max())), generator=g)
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    return tokens, lengths


def random_batch(size: int, steps: int, *, vocab: int, seed: int = 0) -> tuple:
    """``size`` texts of random lengths in [1, steps], the first one ``steps`` long, with
    token ids in [1, vocab), zero-padded to ``steps``: ``(tokens, lengths)``."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (size,), generator=g)
    lengths[0] = steps
    tokens = torch.randint(1, vocab, (size, steps), generator=g)
    tokens[torch.arange(steps)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths


def rnn_model(
    vocab: int,
    classes: int = 3,
    *,
    cell: str = "lstm",
    layers: int = 1,
    bidirectional: bool = False,
    pooling: str = "max",
    hidden: int = 4,
    embed: int = 5,
    dropout: float = 0.0,
    seed: int | None = None,
) -> RNNClassifier:
    """A small RNNClassifier in eval mode, its shape in short keywords (those
    :func:`architectures` draws); built right after ``torch.manual_seed(seed)`` when a seed
    is given, else from the global random state as it is."""
    if seed is not None:
        torch.manual_seed(seed)
    sizes = {"embed_dim": embed, "hidden_size": hidden, "num_layers": layers}
    kind = {"cell": cell, "bidirectional": bidirectional, "pooling": pooling}
    return RNNClassifier(vocab, classes, dropout=dropout, **sizes, **kind).eval()


def architectures(max_layers: int = 2) -> st.SearchStrategy[dict]:
    """Hypothesis draws of a model's shape for :func:`rnn_model`: ``cell``, ``layers`` (1 to
    ``max_layers``), ``bidirectional`` and ``pooling``."""
    return st.fixed_dictionaries(
        {
            "cell": st.sampled_from(sorted(CELLS)),
            "layers": st.integers(1, max_layers),
            "bidirectional": st.booleans(),
            "pooling": st.sampled_from(POOLINGS),
        }
    )


def pruned_model(vocab: int, classes: int, sparsity: float, *, seed: int, **options):
    """A new RNNClassifier (built after ``torch.manual_seed(seed)``) pruned by magnitude to
    ``sparsity``, embedding included, its masks removed, in eval mode."""
    torch.manual_seed(seed)
    model = RNNClassifier(vocab, classes, **options)
    prune(model, sparsity, include_embedding=True)
    remove_masks(model)
    return model.eval()


def code_cells(nb: dict) -> list[dict]:
    """The code cells of a notebook, in order."""
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def solutions_and_checks(nb: dict) -> list[tuple[dict, dict]]:
    """``(solution cell, check cell)`` for every exercise: the check is the first code cell
    after the solution that calls an ``exercises.check_*`` function."""
    cells = code_cells(nb)
    return [
        (cell, next(c for c in cells[i + 1 :] if "exercises.check_" in cell_source(c)))
        for i, cell in enumerate(cells)
        if is_solution(cell)
    ]


def nbgrader_course(root: Path, assignment: str, notebooks: list[Path]) -> dict[str, str]:
    """An nbgrader course directory at ``root``: the ``notebooks`` as
    ``source/<assignment>/``, and ``nbgrader_config.py``. Returns the environment to run
    ``nbgrader`` in, with a Jupyter set-up of its own beside ``root`` (config, data, and a
    ``python3`` kernel that runs this Python), so no user-level setting or kernel counts,
    and the chapters in fast mode."""
    source = root / "source" / assignment
    source.mkdir(parents=True)
    for path in notebooks:
        shutil.copyfile(path, source / path.name)
    (root / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(root)!r}\nc.Execute.timeout = 1200\n",
        encoding="utf-8",
    )
    jupyter = root.parent / f"{root.name}-jupyter"
    kernel = jupyter / "path" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env.update(
        # nbgrader runs `alembic` for its gradebook: the one installed beside this Python
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        JUPYTER_PATH=str(jupyter / "path"),
        COURSE_FAST="1",
        COURSE_PROGRESS="0",
    )
    return env


def run_nbgrader(root: Path, env: dict[str, str], *args: str, timeout: float) -> str:
    """``nbgrader ARGS`` in the course directory ``root``; its output, once it succeeded."""
    nbgrader = Path(sys.executable).with_name("nbgrader")
    done = subprocess.run(
        [str(nbgrader), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{output[-3000:]}"
    return output
