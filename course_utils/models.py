"""The course's text classifier: embedding -> RNN/LSTM/GRU -> pooling over time -> linear.

Introduced in chapter 1; every pruning chapter works on this model. Parameter names are
fixed and used throughout: ``embedding.weight``, ``rnn.weight_ih_l{k}[_reverse]``,
``rnn.weight_hh_l{k}[_reverse]``, ``rnn.bias_*``, ``classifier.weight``, ``classifier.bias``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import checks

__all__ = [
    "CELLS",
    "GATES",
    "MASK_SUFFIX",
    "ORIG_SUFFIX",
    "POOLINGS",
    "RNNClassifier",
    "build_model",
    "cell_name",
    "tensor_group",
]

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
POOLINGS = ("max", "mean", "last")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # gate blocks stacked in weight_ih / weight_hh
# the buffer suffix of course_utils.masking (chapter 2); torch.nn.utils.prune's
# reparametrization keeps the dense weight as "<name>_orig"
MASK_SUFFIX, ORIG_SUFFIX = "_mask", "_orig"


def tensor_group(name: str) -> str:
    """Which part of the classifier a parameter belongs to."""
    if name.startswith("embedding."):
        return "embedding"
    if name.startswith("rnn."):
        return "recurrent"
    if name.startswith("classifier."):
        return "classifier"
    return "other"


def cell_name(rnn: nn.Module) -> str:
    """``"lstm"``, ``"gru"`` or ``"rnn"`` for an nn.LSTM/GRU/RNN module."""
    for name, cls in CELLS.items():
        if type(rnn) is cls:
            return name
    raise TypeError(
        f"unsupported module type {type(rnn).__name__}; expected nn.LSTM, nn.GRU or nn.RNN"
    )


class RNNClassifier(nn.Module):
    """Classify token sequences with a recurrent network.

    Args:
        vocab_size: rows of the embedding; index ``padding_idx`` is padding.
        num_classes: outputs of the classifier.
        embed_dim, hidden_size, num_layers, bidirectional: the RNN's shape.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (tanh).
        pooling: how the per-step outputs become one vector: ``"max"`` or ``"mean"`` over
            the real (unpadded) steps, or ``"last"`` (last real step; for the backward
            direction, its final state, which has read the whole sequence).
        dropout: on the embeddings, between layers and before the classifier.
        max_len: longest sequence ``forward`` accepts (``None``: no limit).
        embed_init_std: initialize the embedding from N(0, std²) instead of PyTorch's
            N(0, 1) (``None`` keeps PyTorch's default).

    ``forward(tokens, lengths)`` takes ``tokens`` (batch, time) int64 right-padded and
    ``lengths`` (batch,) int64 and returns logits (batch, num_classes). Padding never
    reaches the pooled features: bidirectional models read packed sequences; a
    left-to-right RNN reads the padded batch, where no real step can see the padding
    that follows it, and pooling skips the padded steps.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        *,
        embed_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        pooling: str = "max",
        dropout: float = 0.0,
        padding_idx: int | None = 0,
        max_len: int | None = None,
        embed_init_std: float | None = None,
    ):
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("num_classes", num_classes),
            ("embed_dim", embed_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            checks.positive_int(name, value)
        if not isinstance(cell, str) or cell not in CELLS:
            raise ValueError(f"unknown cell={cell!r}; choose from {sorted(CELLS)}")
        if not isinstance(pooling, str) or pooling not in POOLINGS:
            raise ValueError(f"unknown pooling={pooling!r}; choose from {list(POOLINGS)}")
        checks.boolean("bidirectional", bidirectional)
        checks.fraction("dropout", dropout)
        if padding_idx is not None:
            checks.integer(
                "padding_idx",
                padding_idx,
                minimum=-vocab_size,
                maximum=vocab_size - 1,
                allowed=f"None or a row of the embedding, in [{-vocab_size}, {vocab_size - 1}]",
            )
        if max_len is not None:
            checks.integer("max_len", max_len, minimum=1, allowed="a positive int or None")
        if embed_init_std is not None:
            checks.number(
                "embed_init_std", embed_init_std, minimum=0, low_open=True, allowed="> 0 or None"
            )
        self.cell, self.pooling, self.max_len = cell, pooling, max_len
        self.embed_init_std = embed_init_std
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        if embed_init_std is not None:
            with torch.no_grad():
                self.embedding.weight.normal_(0.0, embed_init_std)
                if padding_idx is not None:
                    self.embedding.weight[padding_idx].zero_()
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ):
        """``nn.Module.load_state_dict``, with a clear error for a pruned model's state.

        A state_dict saved from a pruned model carries mask buffers (chapter 2) that a
        fresh model lacks; torch would list them as unexpected keys. The error raised
        here (still a RuntimeError, only where torch would raise) says how to load it.
        """
        if strict:
            _refuse_pruned_state(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # --- shape helpers ------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.rnn.bidirectional else 1

    def config(self) -> dict:
        """Constructor arguments, enough to rebuild this architecture."""
        return {
            "vocab_size": self.embedding.num_embeddings,
            "num_classes": self.classifier.out_features,
            "embed_dim": self.embedding.embedding_dim,
            "hidden_size": self.rnn.hidden_size,
            "num_layers": self.rnn.num_layers,
            "cell": self.cell,
            "bidirectional": self.rnn.bidirectional,
            "pooling": self.pooling,
            "dropout": self.dropout.p,
            "padding_idx": self.embedding.padding_idx,
            "max_len": self.max_len,
            "embed_init_std": self.embed_init_std,
        }

    # --- forward ------------------------------------------------------------------
    def check_inputs(self, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
        """Raise a clear TypeError/ValueError for inputs the model cannot read."""
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
        if not isinstance(lengths, torch.Tensor):
            raise TypeError(f"lengths must be a torch.Tensor, got {type(lengths).__name__}")
        if tokens.dtype != torch.long:
            raise TypeError(f"tokens must have dtype torch.int64 (token ids), got {tokens.dtype}")
        if lengths.dtype != torch.long:
            raise TypeError(f"lengths must have dtype torch.int64, got {lengths.dtype}")
        if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise ValueError(
                f"tokens must have shape (batch, time) with both > 0, got {tuple(tokens.shape)}"
            )
        if lengths.shape != (tokens.shape[0],):
            raise ValueError(
                f"lengths must have shape ({tokens.shape[0]},) to match tokens, "
                f"got {tuple(lengths.shape)}"
            )
        if self.max_len is not None and tokens.shape[1] > self.max_len:
            raise ValueError(
                f"tokens has {tokens.shape[1]} time steps, more than max_len={self.max_len}; "
                "truncate it (course_utils.text.numericalize(..., max_len=...))"
            )
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > tokens.shape[1]:
            raise ValueError(f"lengths must lie in [1, {tokens.shape[1]}], got min {lo}, max {hi}")
        vmin, vmax = int(tokens.min()), int(tokens.max())
        if vmin < 0 or vmax >= self.embedding.num_embeddings:
            raise ValueError(
                f"tokens must lie in [0, vocab_size={self.embedding.num_embeddings}), "
                f"got min {vmin}, max {vmax}"
            )

    def run_rnn(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step RNN outputs ``(batch, time, directions*hidden)`` and the valid-step mask."""
        x = self.dropout(self.embedding(tokens))
        steps = tokens.shape[1]
        needs_packing = self.rnn.bidirectional and bool((lengths < steps).any())
        if needs_packing:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
        else:
            out, _ = self.rnn(x)
        mask = (
            torch.arange(steps, device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]
        )
        return out, mask

    def pool(self, out: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pool per-step outputs over the real steps: (batch, time, F) -> (batch, F)."""
        if self.pooling == "max":
            return out.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        if self.pooling == "mean":
            total = (out * mask[..., None]).sum(dim=1)
            return total / lengths.to(out.device, out.dtype)[:, None]
        # "last": the forward direction's last real step; the backward direction's step 0
        hidden = self.rnn.hidden_size
        idx = (lengths.to(out.device) - 1)[:, None, None].expand(-1, 1, hidden)
        forward_last = out[..., :hidden].gather(1, idx).squeeze(1)
        if not self.rnn.bidirectional:
            return forward_last
        return torch.cat([forward_last, out[:, 0, hidden:]], dim=1)

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(batch, directions*hidden)`` that feed the classifier."""
        self.check_inputs(tokens, lengths)
        out, mask = self.run_rnn(tokens, lengths)
        return self.pool(out, mask, lengths)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(tokens, lengths)))


def _refuse_pruned_state(model: nn.Module, state_dict: Mapping[str, Any]) -> None:
    """Raise a RuntimeError that explains mask (or ``_orig``) keys ``model`` has no room for."""
    own = set(model.state_dict(keep_vars=True))
    params = {name for name, _ in model.named_parameters()}
    extra = [k for k in state_dict if isinstance(k, str) and k not in own]
    origs = [k for k in extra if k.endswith(ORIG_SUFFIX) and k[: -len(ORIG_SUFFIX)] in params]
    masks = [k for k in extra if k.endswith(MASK_SUFFIX) and k[: -len(MASK_SUFFIX)] in params]
    if origs:
        raise RuntimeError(
            f"Unexpected key(s) in state_dict: {origs[:3]}{' ...' if len(origs) > 3 else ''} "
            "come from a model pruned with torch.nn.utils.prune; make its pruning permanent "
            "with torch.nn.utils.prune.remove(module, name) before taking the state_dict"
        )
    if masks:
        raise RuntimeError(
            f"Unexpected key(s) in state_dict: pruning mask(s) "
            f"{masks[:3]}{' ...' if len(masks) > 3 else ''} ({len(masks)} in all) that this "
            "RNNClassifier has no buffers for: the state_dict comes from a pruned model. Load "
            "the checkpoint with course_utils.checkpoints.load_checkpoint(path), or call "
            "course_utils.masking.register_masks_from_state_dict(model, state_dict) "
            "before load_state_dict"
        )


def build_model(config: dict) -> RNNClassifier:
    """Rebuild a model from :meth:`RNNClassifier.config` output."""
    return RNNClassifier(**config)
