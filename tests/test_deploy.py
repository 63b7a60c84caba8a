"""Export and int8 quantization: outputs equal the eager model; unsupported models refused."""

import pickle
import warnings

import pytest
import torch
from helpers import pruned_model, random_batch

from course_utils import deploy
from course_utils.deploy.export import ExportError
from course_utils.models import RNNClassifier

SEQ_LEN = 12


def tiny(seed: int = 0, **kwargs) -> RNNClassifier:
    options = {"embed_dim": 8, "hidden_size": 6, "max_len": SEQ_LEN, **kwargs}
    return pruned_model(50, 4, 0.6, seed=seed, **options)


def batch(size: int, steps: int, seed: int = 0):
    return random_batch(size, steps, vocab=50, seed=seed)


@pytest.fixture(scope="module")
def exported():
    model = tiny()
    return model, deploy.export_classifier(model, SEQ_LEN)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
def test_inference_wrapper_equals_the_model_on_padded_inputs(cell, pooling):
    model = tiny(cell=cell, pooling=pooling)
    wrapper = deploy.InferenceClassifier(model, SEQ_LEN)
    tokens, lengths = batch(7, 9)
    with torch.no_grad():
        expected = model(tokens, lengths)
        got = wrapper(deploy.pad_to(tokens, SEQ_LEN), lengths)
    assert torch.allclose(expected, got, atol=1e-6)


def test_export_save_load_matches_the_model_at_several_batch_sizes(exported, tmp_path):
    model, program = exported
    assert deploy.exported_seq_len(program) == SEQ_LEN
    path = tmp_path / "model.pt2"
    size = deploy.save_exported(path, program)
    assert path.stat().st_size == size > 0
    loaded = deploy.load_exported(path).module()
    for size, steps in [(5, SEQ_LEN), (1, 4), (9, 7)]:
        tokens, lengths = batch(size, steps, seed=size)
        report = deploy.compare_outputs(model, loaded, [(tokens, lengths)], seq_len=SEQ_LEN)
        print(f"batch {size}: max abs logit difference {report['max_abs_diff']:.2e}")
        assert report["max_abs_diff"] < 1e-5
        assert report["label_agreement"] == 1.0 and report["examples"] == size


def test_exported_program_has_a_fixed_number_of_steps(exported):
    _, program = exported
    tokens, lengths = batch(2, SEQ_LEN + 3)
    with pytest.raises(Exception, match=str(SEQ_LEN)):
        program.module()(tokens, lengths)
    with pytest.raises(ValueError, match="seq_len=12"):
        deploy.pad_to(tokens, SEQ_LEN)


def test_unsupported_models_are_refused_clearly():
    with pytest.raises(ExportError, match="bidirectional"):
        deploy.export_classifier(tiny(bidirectional=True))
    with pytest.raises(TypeError, match="RNNClassifier"):
        deploy.export_classifier(torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="max_len"):
        deploy.InferenceClassifier(tiny(), SEQ_LEN + 1)
    with pytest.raises(ValueError, match="example_batch"):
        deploy.export_classifier(tiny(), example_batch=1)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("content", ["pickle", "text", "truncated"])
def test_loading_a_file_that_is_not_an_export_is_refused(tmp_path, exported, content):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt2"
    if content == "pickle":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    elif content == "text":
        path.write_text("hello")
    else:
        deploy.save_exported(path, exported[1])
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ExportError, match="not a readable torch.export file"):
        deploy.load_exported(path)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError):
        deploy.load_exported(tmp_path / "missing.pt2")


def test_int8_quantization_keeps_labels_and_silences_only_its_own_notice():
    model = tiny(seed=2, hidden_size=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized = deploy.quantize_int8(model)
    assert not [w for w in caught if "torch.ao.quantization" in str(w.message)]
    assert type(quantized.rnn).__name__ == "LSTM" and "quantized" in type(quantized.rnn).__module__
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    tokens, lengths = batch(40, SEQ_LEN, seed=3)
    report = deploy.compare_outputs(model, quantized, [(tokens, lengths)])
    assert report["max_abs_diff"] < 0.05
    assert report["label_agreement"] >= 0.95
    with pytest.raises(TypeError, match="RNNClassifier"):
        deploy.quantize_int8(torch.nn.Linear(2, 2))


def test_quantize_reports_a_missing_api(monkeypatch):
    monkeypatch.delattr(torch.ao.quantization, "quantize_dynamic")
    with pytest.raises(RuntimeError, match="quantize_dynamic"):
        deploy.quantize_int8(tiny())


def test_compare_outputs_reports_differences():
    a, b = tiny(seed=0), tiny(seed=1)
    tokens, lengths = batch(6, 8)
    same = deploy.compare_outputs(a, a, [(tokens, lengths)])
    assert same["identical"] == 1.0 and same["max_abs_diff"] == 0.0
    other = deploy.compare_outputs(a, b, [(tokens, lengths)])
    assert other["identical"] == 0.0 and other["max_abs_diff"] > 0
    with torch.no_grad():
        la, lb = a(tokens, lengths), b(tokens, lengths)
    changed = la.argmax(1) != lb.argmax(1)
    assert other["flipped"] == int(changed.sum()) > 0
    top = la[changed].topk(2, dim=1).values
    assert other["largest_flipped_margin"] == pytest.approx(float((top[:, 0] - top[:, 1]).max()))
    assert same["flipped"] == 0 and same["largest_flipped_margin"] == 0.0
    with pytest.raises(ValueError, match="no examples"):
        deploy.compare_outputs(a, b, [])
