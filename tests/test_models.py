import pytest
import torch
from helpers import architectures, rnn_model
from helpers import padded_batch as batch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.models import CELLS, POOLINGS, RNNClassifier, build_model, cell_name


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_shape_and_config_roundtrip(cell, pooling, bidirectional):
    model = RNNClassifier(
        30,
        4,
        embed_dim=5,
        hidden_size=3,
        num_layers=2,
        cell=cell,
        bidirectional=bidirectional,
        pooling=pooling,
    )
    tokens, lengths = batch()
    assert model(tokens, lengths).shape == (4, 4)
    assert model.features(tokens, lengths).shape == (4, 3 * (2 if bidirectional else 1))
    assert build_model(model.config()).config() == model.config()
    assert cell_name(model.rnn) == cell


@settings(max_examples=30, deadline=None)
@given(
    shape=architectures(max_layers=2),
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    extra_padding=st.integers(0, 4),
    seed=st.integers(0, 50),
)
def test_padding_never_leaks_into_the_output(shape, lengths, extra_padding, seed):
    model = rnn_model(30, 3, hidden=3, embed=4, seed=seed, **shape)
    tokens, lens = batch(lengths=lengths, seed=seed)
    tokens = torch.nn.functional.pad(tokens, (0, extra_padding), value=0)
    # garbage in the padding must change nothing
    noisy = tokens.clone()
    for i, n in enumerate(lens):
        noisy[i, n:] = torch.randint(1, 30, (noisy.shape[1] - n,))
    with torch.no_grad():
        together = model(noisy, lens)
        alone = torch.cat(
            [model(tokens[i : i + 1, :n], lens[i : i + 1]) for i, n in enumerate(lens)]
        )
    assert torch.allclose(together, alone, atol=1e-5)


def test_bad_names_and_sizes_are_rejected():
    with pytest.raises(ValueError, match="cell='transformer'"):
        RNNClassifier(10, 2, embed_dim=4, hidden_size=4, cell="transformer")
    with pytest.raises(ValueError, match="pooling='sum'"):
        RNNClassifier(10, 2, embed_dim=4, hidden_size=4, pooling="sum")
    with pytest.raises(ValueError, match="hidden_size"):
        RNNClassifier(10, 2, embed_dim=4, hidden_size=0)
    with pytest.raises(ValueError, match="dropout"):
        RNNClassifier(10, 2, embed_dim=4, hidden_size=4, dropout=1.0)
    with pytest.raises(TypeError, match="unsupported module type Linear"):
        cell_name(torch.nn.Linear(2, 2))


def test_bad_inputs_get_clear_errors():
    model = RNNClassifier(30, 2, embed_dim=4, hidden_size=4, max_len=8)
    tokens, lengths = batch()
    with pytest.raises(TypeError, match="tokens must have dtype torch.int64"):
        model(tokens.float(), lengths)
    with pytest.raises(TypeError, match="lengths must have dtype"):
        model(tokens, lengths.int())
    with pytest.raises(TypeError, match="tokens must be a torch.Tensor"):
        model(tokens.tolist(), lengths)
    with pytest.raises(ValueError, match="tokens must lie in"):
        model(tokens + 100, lengths)
    with pytest.raises(ValueError, match="lengths must lie in"):
        model(tokens, lengths * 10)
    with pytest.raises(ValueError, match="lengths must have shape"):
        model(tokens, lengths[:2])
    with pytest.raises(ValueError, match="more than max_len=8"):
        model(torch.ones(1, 9, dtype=torch.long), torch.tensor([9]))
    with pytest.raises(ValueError, match="tokens must have shape"):
        model(torch.ones(3, dtype=torch.long), torch.tensor([3]))
