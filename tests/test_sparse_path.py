"""The sparse inference path computes what the dense masked model computes.

Equivalence tests over random architectures (LSTM, GRU and tanh RNN; one to three layers;
one or two directions; every pooling), random pruning and random lengths, against the
model itself in eval mode (PyTorch's fused kernels on masked dense weights).
"""

import pytest
import torch
from helpers import architectures, rnn_model
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.deploy.sparse import SparseRNN, recurrent_density
from course_utils.models import RNNClassifier
from course_utils.pruning import prune

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


def batch(lengths, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    steps = max(lengths)
    tokens = torch.randint(1, vocab, (len(lengths), steps), generator=g)
    for row, n in enumerate(lengths):
        tokens[row, n:] = 0  # padding
    return tokens, torch.tensor(lengths)


@settings(max_examples=60, deadline=None)
@given(
    arch=architectures(max_layers=3),
    sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.98]),
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    seed=st.integers(0, 50),
)
def test_the_sparse_path_gives_the_dense_models_logits(arch, sparsity, lengths, seed):
    model = rnn_model(40, 4, hidden=6, embed=5, seed=seed, **arch).eval()
    if sparsity:
        prune(model, sparsity, include_embedding=True, seed=seed)
    sparse = SparseRNN(model)
    tokens, lengths = batch(lengths, 40, seed)
    with torch.no_grad():
        want = model(tokens, lengths)
        got = sparse(tokens, lengths)
        want_out, want_mask = model.run_rnn(tokens, lengths)
        got_out, got_mask = sparse.run_rnn(tokens, lengths)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert torch.equal(got.argmax(1), want.argmax(1))
    assert torch.equal(got_mask, want_mask)
    real = want_mask[..., None].expand_as(want_out)  # padded steps of one direction differ
    assert torch.allclose(got_out[real], want_out[real], atol=1e-5)


def test_the_weights_are_csr_and_the_copy_is_independent():
    torch.manual_seed(0)
    model = RNNClassifier(30, 3, embed_dim=4, hidden_size=8, num_layers=2, bidirectional=True)
    prune(model, 0.9)
    sparse = SparseRNN(model)
    w = sparse.layers[1][1]["w"]  # [W_ih | W_hh] of layer 1's backward direction
    assert w.layout == torch.sparse_csr and w.shape == (32, 16 + 8)
    rnn = model.rnn
    nonzeros = (rnn.weight_ih_l1_reverse != 0).sum() + (rnn.weight_hh_l1_reverse != 0).sum()
    assert w._nnz() == int(nonzeros)
    assert recurrent_density(model) == pytest.approx(0.1, abs=0.01)
    with torch.no_grad():
        model.rnn.weight_hh_l0.zero_()  # the sparse path keeps its own copy
    assert sparse.layers[0][0]["w"]._nnz() > int((model.rnn.weight_ih_l0 != 0).sum())
    assert not sparse.train().training  # inference only


def test_a_model_that_is_not_a_classifier_is_refused():
    with pytest.raises(TypeError, match="model must be an RNNClassifier, got LSTM"):
        SparseRNN(torch.nn.LSTM(3, 4))
    model = RNNClassifier(10, 2, embed_dim=3, hidden_size=4)
    with pytest.raises(ValueError, match="lengths must lie in"):
        SparseRNN(model)(torch.ones(1, 3, dtype=torch.long), torch.tensor([4]))


def test_matching_units_solves_for_the_same_number_of_recurrent_weights():
    from course_utils.experiments.sparse_speed import matching_units

    model = RNNClassifier(50, 5, embed_dim=64, hidden_size=128)
    assert matching_units(model, 1.0) == 128
    # 10 % of 4*128*(64+128) = 9830.4 weights; 4h(64+h) = 9830 -> h = 26.5
    assert matching_units(model, 0.1) in (26, 27)
    for density in (0.5, 0.2, 0.05, 0.01):
        h = matching_units(model, density)
        assert abs(h * (64 + h) - density * 128 * 192) <= (64 + 2 * h + 1), density
    with pytest.raises(ValueError, match="one-layer, one-direction"):
        matching_units(RNNClassifier(50, 5, embed_dim=4, hidden_size=4, num_layers=2), 0.5)


def test_smallest_paying_reads_the_speed_verdict_of_the_map():
    from course_utils.experiments.sparse_speed import smallest_paying

    rows = [
        {"threads": 1, "batch": 64, "sparsity": s, "sparse speed-up": v}
        for s, v in ((0.5, 0.4), (0.9, 1.1), (0.95, 1.3), (0.99, 1.9))
    ] + [{"threads": 1, "batch": 1, "sparsity": 0.99, "sparse speed-up": 0.3}]
    assert smallest_paying(rows, batch=64, threads=1) == 0.95  # 1.1 is within the margin
    assert smallest_paying(rows, batch=1, threads=1) is None
    assert smallest_paying(rows, batch=64, threads=2) is None


def test_the_crossover_map_times_three_models_per_setting():
    from course_utils.experiments.sparse_speed import crossover_map

    torch.manual_seed(0)
    model = RNNClassifier(30, 3, embed_dim=6, hidden_size=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = crossover_map(model, [0.5, 0.9], [1, 4], [1], seq_len=5, rounds=1, repeats=1)
    assert [(r["sparsity"], r["batch"]) for r in rows] == [(0.5, 1), (0.5, 4), (0.9, 1), (0.9, 4)]
    assert all(r["dense masked ms"] > 0 and r["sparse path ms"] > 0 for r in rows)
    assert rows[0]["structured units"] > rows[2]["structured units"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="must not be empty"):
        crossover_map(model, [], [1], [1])
