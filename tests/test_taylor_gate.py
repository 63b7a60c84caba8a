"""Oracle for the gate form of structured Taylor (Molchanov et al. 2019).

The paper scores a hidden unit k through a gate on its output, ``h'_k = m_k·h_k``:
``I_k = (∂L/∂m_k)²`` at ``m = 1``. Here the classifier is run by hand, step by step, with
such a gate wherever another weight reads ``h_t`` (the recurrence's ``weight_hh``, the
next layer, the classifier after pooling); autograd gives ``∂L/∂m``, and
``taylor_unit_scores(form="gate")`` must equal its square. The cell's own carry (an
LSTM's ``c_t``, a GRU's ``z·h_{t-1}``) is not read through a weight and has no gate.
"""

import pytest
import torch
from torch import nn

from course_utils.models import RNNClassifier
from course_utils.pruning import taylor_unit_scores


def run_direction(model, x, layer, direction, gate, gate_carry=False):
    """One layer and direction over one sequence ``x`` (time, features): the gated
    outputs ``gate·h_t`` (time, hidden), in time order."""
    rnn = model.rnn
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih, w_hh = getattr(rnn, "weight_ih" + suffix), getattr(rnn, "weight_hh" + suffix)
    b_ih, b_hh = getattr(rnn, "bias_ih" + suffix), getattr(rnn, "bias_hh" + suffix)
    h = x.new_zeros(rnn.hidden_size)
    c = x.new_zeros(rnn.hidden_size)
    steps = range(len(x) - 1, -1, -1) if direction else range(len(x))
    out = [None] * len(x)
    for t in steps:
        from_input = w_ih @ x[t] + b_ih
        from_state = w_hh @ (gate * h) + b_hh  # weight_hh reads the gated state
        if model.cell == "lstm":
            i, f, g, o = (from_input + from_state).chunk(4)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        elif model.cell == "gru":
            i_r, i_z, i_n = from_input.chunk(3)
            h_r, h_z, h_n = from_state.chunk(3)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            carry = gate * h if gate_carry else h
            h = (1 - z) * torch.tanh(i_n + r * h_n) + z * carry
        else:
            h = torch.tanh(from_input + from_state)
        out[t] = gate * h
    return torch.stack(out)


def gated_logits(model, tokens, lengths, gates, gate_carry=False):
    """The model's logits with ``gates[(layer, direction)]`` on every unit's output.

    Each sequence runs alone on its real steps: what packing (bidirectional) and the
    left-to-right padded run (unidirectional) compute at those steps.
    """
    rnn, hidden = model.rnn, model.rnn.hidden_size
    pooled = []
    for row, n in zip(tokens, lengths.tolist(), strict=True):
        x = model.embedding(row[:n])
        for layer in range(rnn.num_layers):
            x = torch.cat(
                [
                    run_direction(model, x, layer, d, gates[(layer, d)], gate_carry)
                    for d in range(model.num_directions)
                ],
                dim=1,
            )
        if model.pooling == "max":
            pooled.append(x.amax(dim=0))
        elif model.pooling == "mean":
            pooled.append(x.mean(dim=0))
        else:  # last real step forward, step 0 backward
            pooled.append(torch.cat([x[-1, :hidden], x[0, hidden:]]))
    return model.classifier(torch.stack(pooled))


def gate_gradients(model, batch, gate_carry=False):
    """``{(layer, direction): ∂L/∂m}`` at ``m = 1`` for the mean cross-entropy of ``batch``."""
    tokens, lengths, labels = batch
    gates = {
        (layer, d): torch.ones(model.rnn.hidden_size, dtype=torch.float64, requires_grad=True)
        for layer in range(model.rnn.num_layers)
        for d in range(model.num_directions)
    }
    loss = nn.functional.cross_entropy(
        gated_logits(model, tokens, lengths, gates, gate_carry), labels
    )
    grads = torch.autograd.grad(loss, list(gates.values()))
    return dict(zip(gates, grads, strict=True))


def small_model(cell, layers, bidirectional, pooling):
    torch.manual_seed(5)
    shape = {"num_layers": layers, "cell": cell, "bidirectional": bidirectional}
    model = RNNClassifier(30, 3, embed_dim=4, hidden_size=3, pooling=pooling, **shape)
    with torch.no_grad():  # weights larger than PyTorch's initial range, like a trained model
        for p in model.rnn.parameters():
            p.mul_(3)
    return model.double().eval()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(1, 30, (5, 6), generator=g)
    lengths = torch.tensor([6, 4, 6, 2, 5])
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    return tokens, lengths, torch.randint(0, 3, (5,), generator=g)


@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_gate_form_is_the_squared_gradient_of_a_gate_on_each_unit(
    cell, layers, bidirectional, pooling, batch
):
    model = small_model(cell, layers, bidirectional, pooling)
    tokens, lengths, _ = batch
    ones = {key: torch.ones(3, dtype=torch.float64) for key in gate_gradients(model, batch)}
    with torch.no_grad():  # the hand-run forward is the model's forward
        torch.testing.assert_close(
            gated_logits(model, tokens, lengths, ones), model(tokens, lengths), rtol=0, atol=1e-12
        )
    want = gate_gradients(model, batch)
    gate = taylor_unit_scores(model, [batch], num_batches=1, form="gate")
    group = taylor_unit_scores(model, [batch], num_batches=1)
    assert list(gate) == list(want) == list(group)
    for slot, grad in want.items():
        torch.testing.assert_close(gate[slot], (grad**2).float(), rtol=1e-6, atol=1e-12)
        # the course's group form also sums the rows that compute the unit: another score
        assert not torch.allclose(group[slot], gate[slot], rtol=1e-2, atol=1e-8), slot


def test_a_gru_carries_its_own_state_past_the_gate(batch):
    """Gating the GRU's carry ``z·h_{t-1}`` as well adds a path no weight reads."""
    model = small_model("gru", 1, False, "max")
    gate = taylor_unit_scores(model, [batch], num_batches=1, form="gate")[(0, 0)]
    reads = gate_gradients(model, batch)[(0, 0)] ** 2
    with_carry = gate_gradients(model, batch, gate_carry=True)[(0, 0)] ** 2
    torch.testing.assert_close(gate, reads.float(), rtol=1e-6, atol=1e-12)
    assert not torch.allclose(gate, with_carry.float(), rtol=1e-2, atol=1e-8)


def test_unknown_form_is_rejected(batch):
    model = small_model("lstm", 1, False, "max")
    with pytest.raises(ValueError, match="unknown form='paper'"):
        taylor_unit_scores(model, [batch], form="paper")
