import pytest
import torch

from course_utils.measure import (
    compare_latency,
    count_nonzero,
    count_parameters,
    measure_latency,
    num_threads,
    parameter_table,
    size_on_disk,
)
from course_utils.models import RNNClassifier
from course_utils.report import Table


def lstm_params(e, h):
    return 4 * h * (e + h) + 8 * h


def test_parameter_counts_follow_the_lstm_formula():
    model = RNNClassifier(100, 5, embed_dim=8, hidden_size=6)
    counts = count_parameters(model)
    assert counts["embedding"] == 100 * 8
    assert counts["recurrent"] == lstm_params(8, 6)
    assert counts["classifier"] == 6 * 5 + 5
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["total_without_embedding"] == counts["total"] - 800
    table = parameter_table(model)
    assert [r["tensor"] for r in table][:2] == ["embedding.weight", "rnn.weight_ih_l0"]
    assert "embedding.weight" in str(table) and "<table>" in table._repr_html_()


def test_nonzero_counts_and_gzip_size_see_zeros():
    model = RNNClassifier(200, 5, embed_dim=16, hidden_size=32)
    dense = size_on_disk(model)
    with torch.no_grad():
        model.rnn.weight_hh_l0.zero_()
        model.embedding.weight[50:].zero_()
    nz = count_nonzero(model)
    assert (
        nz["recurrent"]
        == count_parameters(model)["recurrent"] - 32 * 128 - (model.rnn.bias_hh_l0 == 0).sum()
    )
    sparse = size_on_disk(model)
    assert sparse["raw_bytes"] == dense["raw_bytes"]  # zeros are stored like any float
    assert sparse["gzip_bytes"] < 0.7 * dense["gzip_bytes"]


def test_latency_measurement_reports_what_was_measured():
    model = RNNClassifier(50, 2, embed_dim=4, hidden_size=4)
    before = torch.get_num_threads()
    lat = measure_latency(model, batch_size=3, seq_len=7, threads=1, repeats=5, warmup=1)
    assert lat.median_ms > 0 and lat.q25_ms <= lat.median_ms <= lat.q75_ms
    assert (lat.batch_size, lat.seq_len, lat.threads, lat.repeats) == (3, 7, 1, 5)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="batch_size"):
        measure_latency(model, batch_size=0)


def test_compare_latency_times_every_model_and_rotates_who_goes_first():
    calls = []
    models = {}
    for name in ("a", "b", "c"):
        model = RNNClassifier(50, 3, embed_dim=4, hidden_size=4)
        model.register_forward_hook(lambda m, i, o, name=name: calls.append((name, len(i[0]))))
        models[name] = model
    result = compare_latency(models, seq_len=5, batch_sizes=(1, 2), rounds=3, repeats=1)
    assert set(result) == {"a", "b", "c"} and all(set(r) == {1, 2} for r in result.values())
    assert all(v > 0 for r in result.values() for v in r.values())
    per_sweep = 6  # warm-up 5 + 1 timed run per model
    sweeps = [calls[i : i + 3 * per_sweep : per_sweep] for i in range(0, len(calls), 3 * per_sweep)]
    assert len(sweeps) == 6  # 3 rounds x 2 batch sizes
    firsts = [sweep[0][0] for sweep in sweeps]
    assert firsts == ["a", "a", "b", "b", "c", "c"]
    assert [sweep[0][1] for sweep in sweeps] == [1, 2] * 3  # batch size of each sweep
    with pytest.raises(ValueError, match="rounds"):
        compare_latency(models, rounds=0)


def test_num_threads_restores_and_checks():
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with num_threads(0):
            pass


def test_table_markdown():
    t = Table([{"a": 1, "b": 0.5}, {"a": 2000, "b": "x"}])
    assert t.to_markdown().splitlines()[2] == "| 1 | 0.5000 |"
    assert "2,000" in str(t)
