import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.text import (
    BucketBatchSampler,
    TextClassificationDataset,
    Vocab,
    basic_tokenize,
    build_vocab_from_iterator,
    collate_batch,
    get_tokenizer,
    make_loader,
    numericalize,
    pad_batch,
)


def test_tokenizer_lowercases_drops_punctuation_and_normalizes_unicode():
    assert basic_tokenize("Profits JUMPED 76%, didn’t they?") == [
        "profits",
        "jumped",
        "76",
        "didn't",
        "they",
    ]
    # NFKC: the ligature "ﬁ" and full-width letters become plain ASCII
    assert basic_tokenize("ﬁnance ＢＢＣ") == ["finance", "bbc"]
    assert get_tokenizer("basic") is basic_tokenize
    with pytest.raises(ValueError, match="name='spacy'"):
        get_tokenizer("spacy")
    with pytest.raises(TypeError, match="text must be a str"):
        basic_tokenize(None)


def test_vocab_orders_by_frequency_then_alphabet_and_honours_specials():
    docs = [["b", "a", "c"], ["a", "b"], ["a", "d"]]
    vocab = build_vocab_from_iterator(docs, min_freq=1)
    assert vocab.get_itos() == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert vocab["zzz"] == vocab["<unk>"] == 1 == vocab.get_default_index()
    assert build_vocab_from_iterator(docs, min_freq=2).get_itos() == [
        "<pad>",
        "<unk>",
        "a",
        "b",
    ]
    # max_tokens counts the specials, as in torchtext
    assert len(build_vocab_from_iterator(docs, max_tokens=3)) == 3
    assert "a" in vocab and "zzz" not in vocab
    assert vocab(["a", "zzz"]) == [2, 1]
    assert vocab.lookup_tokens([2, 3]) == ["a", "b"]
    restored = Vocab.from_state_dict(vocab.state_dict())
    assert restored.get_stoi() == vocab.get_stoi() and restored.get_default_index() == 1


def test_vocab_errors_name_the_argument():
    with pytest.raises(ValueError, match="min_freq"):
        build_vocab_from_iterator([["a"]], min_freq=0)
    with pytest.raises(ValueError, match="max_tokens"):
        build_vocab_from_iterator([["a"]], max_tokens=2)
    with pytest.raises(KeyError, match="no default index"):
        Vocab(["a"])["b"]
    with pytest.raises(ValueError, match="duplicate"):
        Vocab(["a", "a"])


def test_numericalize_truncates_and_rejects_empty_or_unknown_only_texts():
    vocab = build_vocab_from_iterator([["the", "cat"]])
    assert numericalize("the cat the cat", vocab, max_len=3).tolist() == [
        3,
        2,
        3,
    ]  # cat=2, the=3
    assert numericalize("the dog", vocab).tolist() == [3, 1]
    with pytest.raises(ValueError, match="no tokens"):
        numericalize("  ?! ", vocab)
    with pytest.raises(ValueError, match="only unknown tokens"):
        numericalize("zebra yak", vocab)
    assert numericalize("zebra", vocab, allow_unknown_only=True).tolist() == [1]
    with pytest.raises(TypeError, match="text must be a str"):
        numericalize(b"bytes", vocab)
    with pytest.raises(ValueError, match="max_len"):
        numericalize("the", vocab, max_len=0)


def test_dataset_reports_the_bad_example():
    vocab = build_vocab_from_iterator([["ok"]])
    with pytest.raises(ValueError, match=r"examples\[1\] has label=5"):
        TextClassificationDataset([("ok", 0), ("ok", 5)], vocab, num_classes=2)
    with pytest.raises(ValueError, match=r"examples\[0\]: text has no tokens"):
        TextClassificationDataset([("", 0)], vocab, num_classes=2)


def test_pad_and_collate_sort_longest_first():
    a, b = torch.tensor([5, 6]), torch.tensor([7, 8, 9])
    padded, lengths = pad_batch([a, b])
    assert padded.tolist() == [[5, 6, 0], [7, 8, 9]] and lengths.tolist() == [2, 3]
    tokens, lengths, labels = collate_batch([(a, 0), (b, 1)])
    assert tokens.tolist() == [[7, 8, 9], [5, 6, 0]]
    assert lengths.tolist() == [3, 2] and labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match="sequences is empty"):
        pad_batch([])


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 50), min_size=1, max_size=80),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 100),
)
def test_bucket_sampler_yields_every_index_once(lengths, batch_size, seed):
    sampler = BucketBatchSampler(
        lengths,
        batch_size,
        pool_factor=3,
        generator=torch.Generator().manual_seed(seed),
    )
    batches = list(sampler)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(batches) == len(sampler)


def test_bucketing_reduces_padding_and_is_seeded(synthetic_data):
    _, train, _ = synthetic_data
    lengths = train.lengths()

    def padding(batches):
        return sum(
            max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches
        )

    bucketed = list(BucketBatchSampler(lengths, 8, generator=torch.Generator().manual_seed(0)))
    random_batches = [list(range(i, min(i + 8, len(lengths)))) for i in range(0, len(lengths), 8)]
    assert padding(bucketed) < padding(random_batches)
    again = list(BucketBatchSampler(lengths, 8, generator=torch.Generator().manual_seed(0)))
    assert bucketed == again
    tokens, lens, labels = next(iter(make_loader(train, 8, shuffle=True, seed=3)))
    assert tokens.dtype == torch.long and tokens.shape[0] == len(lens) == len(labels)
