import warnings

import pytest
from helpers import same_weights

from course_utils.experiments.baseline import BaselineConfig, get_baseline

TINY = BaselineConfig(
    max_len=24, hidden_size=6, embed_dim=6, epochs=1, max_vocab=500, batch_size=64
)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache")
    first = get_baseline(TINY, cache_dir=folder, progress=False)
    return folder, first


def test_first_call_trains_then_the_cache_is_used(cached):
    folder, first = cached
    assert not first.from_cache and first.metrics["test_accuracy"] > 0
    second = get_baseline(TINY, cache_dir=folder, progress=False)
    assert second.from_cache and same_weights(first.model, second.model)
    assert second.vocab.get_itos() == first.vocab.get_itos()
    assert second.metrics == first.metrics
    tokens, lengths, labels = next(iter(second.loader("test")))
    assert second.model(tokens, lengths).shape == (len(labels), 5)


def test_cache_key_changes_with_config_and_seed():
    key = TINY.key("data", 0)
    assert key != TINY.key("data", 1) != TINY.key("other", 0)
    assert key != BaselineConfig(hidden_size=7).key("data", 0)


@pytest.mark.parametrize("damage", ["truncate", "flip", "flip_header"])
def test_corrupt_cache_is_detected_and_rebuilt(cached, damage, tmp_path):
    folder, first = cached
    import shutil

    for f in folder.iterdir():
        shutil.copy(f, tmp_path / f.name)
    model_file = next(tmp_path.glob("*.safetensors"))
    raw = model_file.read_bytes()
    if damage == "truncate":
        model_file.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":  # in the weights
        model_file.write_bytes(raw[:-10] + bytes(b ^ 0xFF for b in raw[-10:]))
    else:  # a word of the vocabulary, in the JSON header
        at = raw.index(b"<unk>") + 1
        model_file.write_bytes(raw[:at] + b"V" + raw[at + 1 :])
    with pytest.warns(UserWarning, match="not usable"):
        rebuilt = get_baseline(TINY, cache_dir=tmp_path, progress=False)
    assert not rebuilt.from_cache and same_weights(rebuilt.model, first.model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_baseline(TINY, cache_dir=tmp_path, progress=False).from_cache


def test_stale_cache_for_another_key_is_rebuilt(cached, tmp_path):
    folder, _ = cached
    import shutil

    src = next(folder.glob("*.safetensors"))
    # the seed-0 model, copied whole (checksum and all) under the seed-1 run's file name
    seed1 = get_baseline(TINY, seed=1, cache=False, progress=False)
    name = f"baseline-{TINY.key(seed1.data.fingerprint(), 1)[:20]}"
    shutil.copy(src, tmp_path / f"{name}.safetensors")
    with pytest.warns(UserWarning, match="stale"):
        rebuilt = get_baseline(TINY, seed=1, cache_dir=tmp_path, progress=False)
    assert same_weights(rebuilt.model, seed1.model)


def test_loader_rejects_unknown_split(cached):
    _, first = cached
    with pytest.raises(ValueError, match="split='dev'"):
        first.loader("dev")
