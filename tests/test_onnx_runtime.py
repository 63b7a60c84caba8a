"""ONNX Runtime deployment (chapter 6): export, equivalence, input checks, hostile files, int8.

Needs the ``deploy`` extra (installed with ``dev``); without it only the install-hint
tests run.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from course_utils.deploy import onnx_runtime
from course_utils.deploy.export import ExportError
from course_utils.masking import get_masks
from course_utils.measure import compare_latency
from course_utils.models import RNNClassifier
from course_utils.pruning import prune

needs_onnx = pytest.mark.skipif(
    not onnx_runtime.available(), reason="the deploy extra (onnx, onnxruntime) is not installed"
)

VOCAB, CLASSES, MAX_LEN = 40, 4, 30
CONFIGS = {  # every cell type and pooling, one export each
    "lstm-max": {"cell": "lstm", "pooling": "max"},
    "gru-mean": {"cell": "gru", "pooling": "mean"},
    "gru-last": {"cell": "gru", "pooling": "last"},
    "lstm-2layers-pruned": {"cell": "lstm", "pooling": "max", "num_layers": 2, "prune": 0.8},
}


def small_model(cell="lstm", pooling="max", num_layers=1, prune_to=None, seed=0):
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = RNNClassifier(
        VOCAB,
        CLASSES,
        embed_dim=6,
        hidden_size=5,
        num_layers=num_layers,
        cell=cell,
        pooling=pooling,
        dropout=0.2,
        max_len=MAX_LEN,
    ).eval()
    torch.random.set_rng_state(gen_state)
    if prune_to:
        prune(model, prune_to)
    return model


def random_batch(generator, batch, steps):
    tokens = torch.randint(1, VOCAB, (batch, steps), generator=generator)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    for row, n in enumerate(lengths.tolist()):
        tokens[row, n:] = 0  # right padding, as the loaders pad
    return tokens, lengths


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if not onnx_runtime.available():
        pytest.skip("the deploy extra is not installed")
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, cfg in CONFIGS.items():
        cfg = dict(cfg)
        model = small_model(prune_to=cfg.pop("prune", None), **cfg)
        path = folder / f"{name}.onnx"
        nbytes = onnx_runtime.export_onnx(model, path)
        out[name] = (model, path, nbytes)
    return out


@needs_onnx
@pytest.mark.parametrize("name", list(CONFIGS))
def test_onnx_runtime_gives_eager_logits_for_any_batch_and_length(exported, name):
    model, path, nbytes = exported[name]
    assert path.stat().st_size == nbytes
    session = onnx_runtime.OnnxClassifier(path)
    generator = torch.Generator().manual_seed(1)
    # batch 1 and other batch sizes; lengths other than the export's example (8), up to max_len
    for batch, steps in [(1, 1), (1, MAX_LEN), (3, 8), (7, 13), (16, 29), (2, 2)]:
        tokens, lengths = random_batch(generator, batch, steps)
        with torch.no_grad():
            want = model(tokens, lengths)
        got = session(tokens, lengths)
        assert got.shape == want.shape and got.dtype == torch.float32
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@needs_onnx
def test_every_export_keeps_batch_and_time_dynamic(exported):
    import onnx

    # the second and later exports of one session too (each runs in a fresh process)
    for name, (_, path, _) in exported.items():
        proto = onnx.load(str(path))
        dims = [
            [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input
        ]
        assert dims == [["batch", "time"], ["batch"]], name


@needs_onnx
def test_the_pruned_model_is_exported_with_its_zeros_and_without_its_masks(exported):
    import onnx
    from onnx import numpy_helper

    model, path, _ = exported["lstm-2layers-pruned"]
    assert get_masks(model), "the fixture's model should carry masks"
    proto = onnx.load(str(path))
    names = [i.name for i in proto.graph.initializer]
    assert not any(n.endswith("_mask") for n in names)
    zeros = sum(int((numpy_helper.to_array(i) == 0).sum()) for i in proto.graph.initializer)
    pruned = sum(int((~m).sum()) for m in get_masks(model).values())
    assert zeros >= pruned


@needs_onnx
def test_the_exported_model_is_left_unchanged(exported):
    model, _, _ = exported["lstm-2layers-pruned"]
    assert get_masks(model)  # export works on a copy: the masks are still there


@needs_onnx
def test_bidirectional_and_tanh_rnn_models_are_refused(tmp_path):
    model = RNNClassifier(VOCAB, CLASSES, embed_dim=4, hidden_size=3, bidirectional=True)
    with pytest.raises(ExportError, match="bidirectional"):
        onnx_runtime.export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="cell='rnn' cannot be exported"):
        onnx_runtime.export_onnx(small_model(cell="rnn"), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


@needs_onnx
def test_inputs_are_checked_with_the_argument_named(exported):
    session = onnx_runtime.OnnxClassifier(exported["lstm-max"][1])
    tokens, lengths = torch.ones(2, 5, dtype=torch.long), torch.tensor([5, 3])
    with pytest.raises(ValueError, match="tokens must lie in"):
        session(tokens * VOCAB, lengths)
    with pytest.raises(ValueError, match="lengths must lie in"):
        session(tokens, torch.tensor([5, 0]))
    with pytest.raises(TypeError, match="tokens must have dtype"):
        session(tokens.float(), lengths)
    with pytest.raises(ValueError, match="max_len=30"):
        session(torch.ones(1, MAX_LEN + 1, dtype=torch.long), torch.tensor([MAX_LEN]))
    with pytest.raises(ValueError, match=r"shape \(batch, time\)"):
        session(torch.ones(5, dtype=torch.long), lengths)
    with pytest.raises(ValueError, match="lengths must have shape"):
        session(tokens, torch.tensor([5]))
    with pytest.raises(ValueError, match="threads"):
        onnx_runtime.OnnxClassifier(exported["lstm-max"][1], threads=0)


@needs_onnx
def test_files_that_are_not_what_they_claim_are_refused(exported, tmp_path, monkeypatch):
    import onnx

    good = exported["lstm-max"][1]
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not an onnx model" * 50)
    with pytest.raises(ExportError, match="not an ONNX model"):
        onnx_runtime.OnnxClassifier(garbage)
    with pytest.raises(FileNotFoundError, match="not a file"):
        onnx_runtime.OnnxClassifier(tmp_path / "missing.onnx")
    # weights in an external file, which could point anywhere on the disk
    proto = onnx.load(str(good))
    external = tmp_path / "external.onnx"
    onnx.save(proto, str(external), save_as_external_data=True, size_threshold=0, location="w.bin")
    with pytest.raises(ExportError, match="external data"):
        onnx_runtime.OnnxClassifier(external)
    # an ONNX model that export_onnx did not write
    proto = onnx.load(str(good))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    with pytest.raises(ExportError, match="not written by export_onnx"):
        onnx_runtime.OnnxClassifier(foreign)
    # a size limit, checked before the file is read
    monkeypatch.setattr(onnx_runtime, "MAX_ONNX_BYTES", 1000)
    with pytest.raises(ExportError, match="larger than 1000 bytes"):
        onnx_runtime.OnnxClassifier(good)


@needs_onnx
def test_int8_quantizes_the_lstm_and_classifier_and_keeps_the_embedding(exported, tmp_path):
    import onnx
    from onnx import TensorProto

    model, path, _ = exported["lstm-max"]
    dst = tmp_path / "int8.onnx"
    nbytes = onnx_runtime.quantize_onnx_int8(path, dst)
    assert dst.stat().st_size == nbytes
    proto = onnx.load(str(dst))
    ops = {n.op_type for n in proto.graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops
    assert "MatMulInteger" in ops  # the classifier
    embedding = next(i for i in proto.graph.initializer if i.name.endswith("embedding.weight"))
    assert embedding.data_type == TensorProto.FLOAT
    session = onnx_runtime.OnnxClassifier(dst)  # the metadata survives quantization
    tokens, lengths = random_batch(torch.Generator().manual_seed(2), 8, 12)
    with torch.no_grad():
        want = model(tokens, lengths)
    assert (session(tokens, lengths) - want).abs().max() < 0.1  # int8 rounding, not garbage


@needs_onnx
def test_the_latency_tools_time_a_session_beside_eager_models(exported):
    model, path, _ = exported["lstm-max"]
    session = onnx_runtime.OnnxClassifier(path)
    ms = compare_latency(
        {"eager": model, "onnx": session}, seq_len=10, batch_sizes=(1, 4), rounds=1, repeats=1
    )
    assert set(ms) == {"eager", "onnx"} and all(v > 0 for r in ms.values() for v in r.values())


@needs_onnx
def test_the_comparison_driver_checks_quantizes_and_times_every_model(tmp_path):
    from course_utils.experiments.onnx_speed import onnx_comparison

    models = {"a model": small_model(), "its pruned copy": small_model(prune_to=0.9)}
    generator = torch.Generator().manual_seed(3)
    loader = []
    for _ in range(3):
        tokens, lengths = random_batch(generator, 5, 11)
        loader.append((tokens, lengths, torch.randint(0, CLASSES, (5,), generator=generator)))
    out = onnx_comparison(models, loader, tmp_path, seq_len=12, rounds=1, repeats=1)
    assert [r["model"] for r in out.checks] == list(models)
    assert all(r["same labels"] == 1.0 and r["examples"] == 15 for r in out.checks)
    assert all(d < 1e-5 for d in out.largest_diff.values())
    assert [(r["model"], r["precision"]) for r in out.timings] == [
        (m, p) for m in models for p in ("fp32", "int8")
    ]
    for r in out.timings:
        for bs in (1, 64):
            ratio = r[f"PyTorch b{bs} (ms)"] / r[f"ONNX Runtime b{bs} (ms)"]
            assert r[f"ONNX Runtime speed-up b{bs}"] == pytest.approx(ratio)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a_model.onnx",
        "a_model_int8.onnx",
        "its_pruned_copy.onnx",
        "its_pruned_copy_int8.onnx",
    ]
    with pytest.raises(ValueError, match="models must not be empty"):
        onnx_comparison({}, loader, tmp_path)
    with pytest.raises(TypeError, match=r"models\['x'\] must be an RNNClassifier"):
        onnx_comparison({"x": object()}, loader, tmp_path)


def test_without_the_extra_every_entry_point_says_how_to_install_it(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "onnxruntime" else real(name, *a, **k),
    )
    assert not onnx_runtime.available()
    hint = r"pip install -e '\.\[deploy\]'"
    with pytest.raises(ImportError, match=hint):
        onnx_runtime.export_onnx(small_model(), tmp_path / "m.onnx")
    with pytest.raises(ImportError, match=hint):
        onnx_runtime.OnnxClassifier(tmp_path / "m.onnx")
    with pytest.raises(ImportError, match=hint):
        onnx_runtime.quantize_onnx_int8(tmp_path / "m.onnx", tmp_path / "q.onnx")
    assert not list(tmp_path.iterdir())
