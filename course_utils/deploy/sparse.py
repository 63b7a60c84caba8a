"""A sparse inference path for a pruned RNNClassifier: unstructured zeros that save time.

Introduced in chapter 6. ``nn.LSTM`` takes dense weights only, so the zeros of a masked
model are multiplied like any other number (chapter 4 measured 1.0x). :class:`SparseRNN`
runs the same model with its recurrent weight matrices stored in compressed sparse row
form (``torch.sparse_csr``) and the recurrence written out step by step: for an LSTM or
tanh RNN, one sparse x dense product per step, ``[W_ih | W_hh]`` (gates x (inputs +
hidden)) times ``[x_t; h]`` for the whole batch, then the gate arithmetic of PyTorch's
LSTM (gates i, f, g, o) or RNN; for a GRU, two products (its n gate needs ``W_hn h`` on
its own). The state is kept as ``(hidden, batch)`` so that each product is CSR times a
dense matrix, the form torch's sparse kernels run fastest. (Projecting the inputs of all
steps at once, as cuDNN does, costs more here: on this CPU the large CSR product and the
reshuffle of its result take longer than 400 small products.) Padding and lengths are handled
exactly as :meth:`RNNClassifier.run_rnn` does: a one-direction model reads the padded
batch (no real step sees the padding that follows it, and pooling skips it); a
bidirectional one behaves as on packed sequences (a padded step neither changes the state
nor is output, so the backward direction starts at each article's last real step). The
embedding lookup, the pooling and the classifier are the model's own.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from ..models import RNNClassifier
from ..pruning.magnitude import pruned_sparsity

__all__ = ["SparseRNN", "recurrent_density"]

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def _csr32(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` in CSR form with int32 indices: the form the CPU kernel takes as is
    (with int64 indices each product would convert them first)."""
    csr = weight.to_sparse_csr()
    return torch.sparse_csr_tensor(
        csr.crow_indices().to(torch.int32),
        csr.col_indices().to(torch.int32),
        csr.values(),
        size=csr.shape,
        check_invariants=True,  # once, when built: the indices are consistent
    )


def recurrent_density(model: RNNClassifier) -> float:
    """Fraction of non-zero weights over every ``weight_ih`` and ``weight_hh`` of the RNN."""
    names = [f"rnn.{n}" for n, _ in model.rnn.named_parameters() if n.startswith("weight_")]
    return 1.0 - pruned_sparsity(model, names)


class SparseRNN(nn.Module):
    """``model`` (an RNNClassifier, pruned or not) with its RNN run on CSR weights.

    Inference only (the module is always in eval mode; no gradient flows). Its logits
    equal ``model``'s in eval mode up to float rounding (the products add the same terms
    in another order). ``model`` is copied: pruning it further later does not change this
    one. ``layers[l][d]`` holds the CSR weights and the biases of layer ``l``, direction
    ``d``.
    """

    def __init__(self, model: RNNClassifier):
        super().__init__()
        if not isinstance(model, RNNClassifier):
            raise TypeError(f"model must be an RNNClassifier, got {type(model).__name__}")
        self.model = copy.deepcopy(model).eval()
        rnn = self.model.rnn
        self.cell = self.model.cell
        self.hidden = rnn.hidden_size
        self.layers: list[list[dict[str, torch.Tensor]]] = []
        with warnings.catch_warnings():  # torch calls its CSR support "beta"
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self._convert(rnn)

    def _convert(self, rnn: nn.RNNBase) -> None:
        hidden = rnn.hidden_size
        # LSTM rows go from PyTorch's gate order i, f, g, o to i, f, o, g, so that one
        # sigmoid covers the first three blocks and one tanh the last
        order = (
            torch.cat([torch.arange(k * hidden, (k + 1) * hidden) for k in (0, 1, 3, 2)])
            if self.cell == "lstm"
            else None
        )
        for layer in range(rnn.num_layers):
            directions = []
            for direction in range(self.model.num_directions):
                sfx = _suffix(layer, direction)
                t = {
                    key: getattr(rnn, name + sfx).detach().float()
                    for key, name in (
                        ("w_ih", "weight_ih"),
                        ("w_hh", "weight_hh"),
                        ("b_ih", "bias_ih"),
                        ("b_hh", "bias_hh"),
                    )
                }
                if order is not None:
                    t = {key: value[order] for key, value in t.items()}
                if self.cell == "gru":  # the n gate reads W_hn h + b_hn on its own
                    w = {
                        "w_ih": _csr32(t["w_ih"]),
                        "w_hh": _csr32(t["w_hh"]),
                        "b_ih": t["b_ih"][:, None],
                        "b_hh": t["b_hh"][:, None],
                    }
                else:  # one product per step: [W_ih | W_hh] times [x_t; h]
                    weight = torch.cat([t["w_ih"], t["w_hh"]], dim=1)
                    bias = (t["b_ih"] + t["b_hh"])[:, None]
                    # tanh(z) = 2 sigmoid(2z) - 1, and torch's sigmoid is the faster of the
                    # two on a CPU: the rows that feed a tanh (LSTM's g, every RNN row) are
                    # doubled here, so that one sigmoid covers every gate
                    rows = slice(3 * hidden, None) if self.cell == "lstm" else slice(None)
                    weight[rows] *= 2
                    bias[rows] *= 2
                    w = {"w": _csr32(weight), "b": bias}
                directions.append(w)
            self.layers.append(directions)

    @property
    def embedding(self) -> nn.Embedding:
        return self.model.embedding

    def train(self, mode: bool = True) -> SparseRNN:  # inference only: stay in eval mode
        return super().train(False)

    # --- one layer, one direction ------------------------------------------------------

    def _step(self, w: dict, inp: torch.Tensor, c: torch.Tensor | None):
        """One time step: ``inp`` is ``[x_t; h]`` as ``(features + hidden, batch)``.

        Returns the new ``(h, c)`` (``c`` is None but for an LSTM).
        """
        if self.cell == "gru":
            h = inp[-self.hidden :]
            gx = torch.addmm(w["b_ih"], w["w_ih"], inp[: -self.hidden])  # sparse products
            gh = torch.addmm(w["b_hh"], w["w_hh"], h)
            two = 2 * self.hidden
            r, z = torch.sigmoid(gx[:two] + gh[:two]).chunk(2, dim=0)
            n = torch.tanh(torch.addcmul(gx[two:], r, gh[two:]))
            return torch.addcmul(n, z, h - n), None  # (1 - z) n + z h
        gates = torch.addmm(w["b"], w["w"], inp).sigmoid_()  # the sparse product
        if self.cell == "rnn":
            return gates.mul_(2).sub_(1), None  # tanh of the pre-activation (_convert)
        i, f, o, s = gates.chunk(4, dim=0)  # rows i, f, o, then g's 2z (see _convert)
        c = torch.addcmul(torch.addcmul(-i, f, c), i, s, value=2)  # f c + i (2 s - 1)
        return torch.addcmul(-o, o, torch.sigmoid(2 * c), value=2), c  # o tanh(c)

    def _direction(
        self,
        inputs: torch.Tensor,
        w: dict,
        valid: torch.Tensor | None,
        reverse: bool,
        out: torch.Tensor,
    ) -> None:
        """Run one direction of one layer and write its outputs into ``out``.

        ``inputs`` is ``(batch, time, features)``, ``out`` the ``(batch, time, hidden)``
        slice of the layer's output that belongs to this direction; ``valid`` (batch,
        time) is given when padded steps must be skipped (packed semantics), else ``None``.
        """
        batch, steps, features = inputs.shape
        inp = inputs.new_zeros(features + self.hidden, batch)  # [x_t; h], one column each
        h = inp[features:]  # the state lives in the product's input: no concatenation
        c = inputs.new_zeros(self.hidden, batch) if self.cell == "lstm" else None
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            inp[:features].copy_(inputs[:, t].T)
            h_new, c_new = self._step(w, inp, c)
            if valid is not None:  # packed: a padded step keeps the state, outputs zeros
                v = valid[:, t][None, :]
                if c is not None:
                    c_new = torch.where(v, c_new, c)
                h_new, h_out = torch.where(v, h_new, h), torch.where(v, h_new, 0.0)
            else:
                h_out = h_new
            h.copy_(h_new)
            c = c_new
            out[:, t].copy_(h_out.T)

    # --- the model ---------------------------------------------------------------------

    def run_rnn(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What :meth:`RNNClassifier.run_rnn` returns, computed on the CSR weights."""
        steps = tokens.shape[1]
        mask = (
            torch.arange(steps, device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]
        )
        packed = self.model.rnn.bidirectional and bool((lengths < steps).any())
        valid = mask if packed else None
        layer_input = self.model.embedding(tokens).float()  # (batch, time, features)
        hidden = self.hidden
        for directions in self.layers:
            out = layer_input.new_zeros(*tokens.shape, len(directions) * hidden)
            for d, w in enumerate(directions):
                part = out[..., d * hidden : (d + 1) * hidden]
                self._direction(layer_input, w, valid, reverse=d == 1, out=part)
            layer_input = out  # (batch, time, directions * hidden), like nn.LSTM's
        return layer_input, mask

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.model.check_inputs(tokens, lengths)
        out, mask = self.run_rnn(tokens, lengths)
        return self.model.classifier(self.model.pool(out, mask, lengths))
