"""Hostile input: every bad argument, damaged file and odd text the course must survive.

One test per case. Each either asserts the exact error (its type, and a message that
names the argument and what is allowed), or asserts the correct result. Four parts:
the text pipeline and model arguments; training, pruning and the widgets; files
(checkpoints, caches, compressed models, exported programs); the exercise checks.
"""

import copy
import doctest
import errno
import gzip
import hashlib
import html
import io
import json
import math
import os
import pathlib
import pickle
import re
import resource
import shutil
import struct
import subprocess
import sys
import time
import warnings
import zipfile

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from helpers import same_weights
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import checkpoints, checks, data, deploy, exercises, files, masking, text
from course_utils.checkpoints import (
    CheckpointError,
    load_checkpoint,
    save_cached,
    save_checkpoint,
)
from course_utils.deploy import compress, robustness
from course_utils.deploy.compress import FormatError
from course_utils.exercises.common import RETURNED_NONE
from course_utils.experiments import zoo
from course_utils.experiments.baseline import BaselineConfig, get_baseline
from course_utils.models import RNNClassifier
from course_utils.pruning import (
    agp_pruning,
    finetune,
    get_masks,
    iterative_pruning,
    lottery_ticket,
    one_shot_pruning,
    prune,
)
from course_utils.pruning.criteria import gradual_pruning, snip_pruning
from course_utils.pruning.gan import GALConfig, train_gal
from course_utils.pruning.gradient import (
    MovementScores,
    RunningTaylorScores,
    snip_scores,
    taylor_scores,
)
from course_utils.text import (
    BucketBatchSampler,
    TextClassificationDataset,
    Vocab,
    basic_tokenize,
    build_vocab_from_iterator,
    collate_batch,
    make_loader,
    normalize,
    numericalize,
    pad_batch,
)
from course_utils.train import evaluate, predict, train_model
from course_utils.widgets import agp_schedule_widget, criteria_widget
from course_utils.widgets.common import error_html

# === Text pipeline, vocabulary, data split, model arguments ===========================
# Hostile inputs for the text area: tokenizer, vocabulary, data split, model arguments.
#
# Each test gives one wrong or unusual input and checks that it is either handled the
# documented way or refused at the call, with an error that names the argument and what
# is allowed.


# the course tokenizer before it learnt Unicode letters: what the default data was read with
ASCII_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def untrained_model(**kwargs) -> RNNClassifier:
    return RNNClassifier(30, 3, embed_dim=4, hidden_size=5, **kwargs)


def small_dataset() -> TextClassificationDataset:
    vocab = build_vocab_from_iterator([["the", "cat", "sat"]])
    return TextClassificationDataset([("the cat", 0), ("cat sat", 1)], vocab, num_classes=2)


# --- 1. the tokenizer on non-English text -----------------------------------------------


def test_french_accented_words_stay_whole():
    assert basic_tokenize("Café, résumé: l’été à Noël") == ["café", "résumé", "l'été", "à", "noël"]


def test_german_umlauts_and_eszett_stay_whole():
    assert basic_tokenize("Zürich: Öl und Straße (STRASSE)") == [
        "zürich",
        "öl",
        "und",
        "straße",
        "strasse",
    ]


def test_decomposed_accents_read_as_composed_ones():
    # NFD input (e + combining acute) becomes the precomposed letter under NFKC
    assert basic_tokenize("Cafe\u0301 re\u0301sume\u0301") == ["café", "résumé"]


def test_turkish_dotted_capital_i_keeps_its_combining_dot():
    # str.lower: "İ" -> "i" + U+0307 (kept inside the word); "I" -> "i"; "ı" stays "ı"
    assert basic_tokenize("İstanbul Istanbul ılık") == ["i\u0307stanbul", "istanbul", "ılık"]


def test_arabic_words_digits_and_vowel_marks():
    assert basic_tokenize("مرحبا بالعالم، ٢٠٢٤!") == ["مرحبا", "بالعالم", "٢٠٢٤"]
    # harakat are combining marks: the vowelled word is one token, not five letters
    assert basic_tokenize("مُحَمَّد") == ["مُحَمَّد"]


def test_devanagari_vowel_signs_stay_in_the_word():
    assert basic_tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]


def test_chinese_run_of_han_characters_is_one_token():
    # no spaces in Chinese: a run of letters is one token; punctuation still separates
    assert basic_tokenize("我爱北京。天安门") == ["我爱北京", "天安门"]


def test_emoji_are_not_letters_and_are_dropped():
    assert basic_tokenize("great ❤️ 🎉 👩‍💻 🇫🇷 news") == ["great", "news"]


def test_variation_selector_inside_a_han_word_does_not_split_it():
    assert basic_tokenize("葛\U000e0100城") == ["葛城"]


def test_underscore_separates_words():
    assert basic_tokenize("snake_case __init__") == ["snake", "case", "init"]


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(max_codepoint=127))
    | st.text(alphabet="aZ09'_ .-\t’", max_size=30)
)
def test_on_ascii_text_the_tokenizer_is_the_old_ascii_one(sample):
    ascii_text = sample.replace("’", "'")
    assert basic_tokenize(ascii_text) == ASCII_WORD.findall(normalize(ascii_text))


def test_default_bbc_data_tokenizes_as_before():
    # the default vocabulary is pinned: every BBC News article reads as with the ASCII rule
    texts, _, _, _ = data.read_bbc_news()
    changed = [
        i for i, t in enumerate(texts) if basic_tokenize(t) != ASCII_WORD.findall(normalize(t))
    ]
    assert changed == []


def test_text_module_doctests_pass():
    result = doctest.testmod(text)
    assert result.attempted >= 2 and result.failed == 0


# --- 2. raw strings where token lists are expected --------------------------------------


def test_vocab_from_raw_strings_says_tokenize_first():
    with pytest.raises(TypeError, match=r"iterator item 0 must be a list of tokens.*tokenize"):
        build_vocab_from_iterator(["hello world"])


def test_vocab_from_one_string_says_tokenize_first():
    with pytest.raises(TypeError, match=r"iterator must be an iterable of token lists.*tokenize"):
        build_vocab_from_iterator("hello world")


def test_vocab_from_non_string_tokens_is_refused():
    with pytest.raises(TypeError, match=r"tokens must be str, got 3 \(int\)"):
        build_vocab_from_iterator([[3, 4]])


def test_specials_given_as_one_string_are_refused():
    with pytest.raises(TypeError, match=r"specials must be a list of special tokens"):
        build_vocab_from_iterator([["a"]], specials="<unk>")


def test_vocab_lookup_of_a_raw_string_says_tokenize_first():
    vocab = build_vocab_from_iterator([["hello"]])
    with pytest.raises(TypeError, match=r"tokens must be a list of tokens.*tokenize"):
        vocab("hello")


# --- 3. flags must be bools; token ids must exist ----------------------------------------


@pytest.mark.parametrize("value", ["no", 1, None])
def test_bidirectional_must_be_a_bool(value):
    with pytest.raises(TypeError, match=r"bidirectional must be True or False"):
        untrained_model(bidirectional=value)


def test_shuffle_of_make_loader_must_be_a_bool():
    with pytest.raises(TypeError, match=r"shuffle must be True or False, got 'no'"):
        make_loader(small_dataset(), 2, shuffle="no")


def test_shuffle_of_the_bucket_sampler_must_be_a_bool():
    with pytest.raises(TypeError, match=r"shuffle must be True or False, got 0"):
        BucketBatchSampler([1, 2], 2, shuffle=0)


def test_allow_unknown_only_must_be_a_bool():
    vocab = build_vocab_from_iterator([["a"]])
    with pytest.raises(TypeError, match=r"allow_unknown_only must be True or False"):
        numericalize("zzz", vocab, allow_unknown_only="yes")


def test_special_first_must_be_a_bool():
    with pytest.raises(TypeError, match=r"special_first must be True or False"):
        build_vocab_from_iterator([["a"]], special_first="no")


def test_negative_token_id_is_an_index_error():
    vocab = Vocab(["<pad>", "<unk>", "a"])
    with pytest.raises(IndexError, match=r"token id -1 is out of range .* size 3"):
        vocab.lookup_tokens([-1])


def test_token_id_past_the_end_is_an_index_error():
    vocab = Vocab(["<pad>", "<unk>", "a"])
    with pytest.raises(IndexError, match=r"indices\[1\]: token id 3 is out of range .* size 3"):
        vocab.lookup_tokens([2, 3])


def test_token_ids_may_be_a_tensor_but_not_strings():
    vocab = Vocab(["<pad>", "<unk>", "a"])
    assert vocab.lookup_tokens(torch.tensor([2, 0])) == ["a", "<pad>"]
    with pytest.raises(TypeError, match=r"indices\[0\] must be an int token id"):
        vocab.lookup_tokens(["a"])


# --- 4. numbers of the wrong type --------------------------------------------------------


def test_valid_frac_as_a_string_is_refused():
    with pytest.raises(TypeError, match=r"valid_frac must be .*\[0, 1\), got '0.1'"):
        data.stratified_split([("a", 0)], valid_frac="0.1")


def test_test_frac_none_is_refused():
    with pytest.raises(TypeError, match=r"test_frac must be .*\[0, 1\), got None"):
        data.stratified_split([("a", 0)], test_frac=None)


def test_online_loader_checks_valid_frac_before_any_download():
    with pytest.raises(TypeError, match=r"valid_frac must be .*\[0, 1\), got '0.1'"):
        data.load_online_dataset("ag_news", valid_frac="0.1")


def test_online_loader_checks_max_train():
    with pytest.raises(TypeError, match=r"max_train must be a positive int or None, got 2.5"):
        data.load_online_dataset("ag_news", max_train=2.5)


def test_unknown_online_dataset_name_is_a_value_error():
    with pytest.raises(ValueError, match=r"name='agnews'; choose from \['ag_news'"):
        data.load_online_dataset("agnews")


def test_min_freq_none_is_refused():
    with pytest.raises(TypeError, match=r"min_freq must be a positive int, got None"):
        build_vocab_from_iterator([["a"]], min_freq=None)


def test_min_freq_true_is_refused():
    with pytest.raises(TypeError, match=r"min_freq must be a positive int, got True \(bool\)"):
        build_vocab_from_iterator([["a"]], min_freq=True)


def test_max_tokens_float_is_refused():
    with pytest.raises(TypeError, match=r"max_tokens must be an int or None, got 4.5"):
        build_vocab_from_iterator([["a"]], max_tokens=4.5)


def test_max_len_float_in_numericalize_is_refused():
    vocab = build_vocab_from_iterator([["a"]])
    with pytest.raises(TypeError, match=r"max_len must be a positive int or None, got 2.5"):
        numericalize("a a a", vocab, max_len=2.5)


def test_max_len_float_in_the_dataset_is_refused_once_not_per_example():
    vocab = build_vocab_from_iterator([["a"]])
    with pytest.raises(TypeError, match=r"^max_len must be a positive int or None, got 2.5"):
        TextClassificationDataset([("a", 0)], vocab, num_classes=2, max_len=2.5)


def test_max_len_float_in_the_model_is_refused():
    with pytest.raises(TypeError, match=r"max_len must be a positive int or None, got 2.5"):
        untrained_model(max_len=2.5)


def test_num_classes_float_in_the_dataset_is_refused():
    vocab = build_vocab_from_iterator([["a"]])
    with pytest.raises(TypeError, match=r"num_classes must be a positive int, got 2.0"):
        TextClassificationDataset([("a", 0)], vocab, num_classes=2.0)


def test_bool_label_is_refused():
    vocab = build_vocab_from_iterator([["a"]])
    with pytest.raises(ValueError, match=r"examples\[0\] has label=True, expected 0..1"):
        TextClassificationDataset([("a", True)], vocab, num_classes=2)


@pytest.mark.parametrize("value", [2.5, None, True, "8"])
def test_batch_size_of_make_loader_must_be_an_int(value):
    with pytest.raises(TypeError, match=r"batch_size must be a positive int"):
        make_loader(small_dataset(), value)


@pytest.mark.parametrize("value", [2.5, None, True])
def test_batch_size_of_the_bucket_sampler_must_be_an_int(value):
    with pytest.raises(TypeError, match=r"batch_size must be a positive int"):
        BucketBatchSampler([1, 2, 3], value)


def test_batch_size_zero_is_a_value_error():
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got 0"):
        make_loader(small_dataset(), 0)


def test_pool_factor_zero_is_refused_at_the_call():
    with pytest.raises(ValueError, match=r"pool_factor must be a positive int, got 0"):
        BucketBatchSampler([1, 2, 3], 2, pool_factor=0)


def test_pool_factor_float_is_refused():
    with pytest.raises(TypeError, match=r"pool_factor must be a positive int, got 1.5"):
        BucketBatchSampler([1, 2, 3], 2, pool_factor=1.5)


def test_loader_seed_as_a_string_is_refused():
    with pytest.raises(TypeError, match=r"seed must be an int, got '0'"):
        make_loader(small_dataset(), 2, seed="0")


def test_split_seed_as_a_string_is_refused():
    with pytest.raises(TypeError, match=r"seed must be an int, got '0'"):
        data.stratified_split([("a", 0)], seed="0")


def test_default_index_as_a_string_is_refused():
    with pytest.raises(TypeError, match=r"index must be an int, got '1'"):
        Vocab(["<pad>", "<unk>"]).set_default_index("1")


def test_model_size_as_a_float_is_a_type_error():
    with pytest.raises(TypeError, match=r"hidden_size must be a positive int, got 4.0"):
        RNNClassifier(10, 2, embed_dim=4, hidden_size=4.0)


def test_model_dropout_as_a_string_is_refused():
    with pytest.raises(TypeError, match=r"dropout must be .*\[0, 1\), got '0.1'"):
        untrained_model(dropout="0.1")


def test_model_embed_init_std_as_a_string_is_refused():
    with pytest.raises(TypeError, match=r"embed_init_std must be > 0 or None, got '0.1'"):
        untrained_model(embed_init_std="0.1")


def test_model_padding_idx_outside_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match=r"padding_idx must be None or a row of the embedding"):
        untrained_model(padding_idx=30)


def test_model_without_padding_idx_keeps_its_initialized_embedding():
    torch.manual_seed(0)
    model = untrained_model(padding_idx=None, embed_init_std=0.1)
    assert model.embedding.padding_idx is None
    assert (model.embedding.weight != 0).all()


def test_pad_index_as_a_float_is_refused():
    with pytest.raises(TypeError, match=r"pad_index must be an int, got 0.5"):
        pad_batch([torch.tensor([1, 2])], pad_index=0.5)


# --- 5. batches of the wrong shape ------------------------------------------------------


def test_collate_of_2d_ids_names_the_expected_shape():
    ids = torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(
        ValueError, match=r"batch\[0\] ids must be a 1-D tensor of token ids .*got shape \(2, 3\)"
    ):
        collate_batch([(ids, 0)])


def test_collate_of_float_ids_is_refused():
    with pytest.raises(TypeError, match=r"batch\[1\] ids must hold integer token ids"):
        collate_batch([(torch.tensor([1, 2]), 0), (torch.tensor([1.0, 2.0]), 1)])


def test_collate_of_items_that_are_not_pairs_is_refused():
    with pytest.raises(TypeError, match=r"batch\[0\] must be an \(ids, label\) pair"):
        collate_batch([torch.tensor([1, 2])])


def test_pad_batch_of_2d_sequences_names_the_bad_one():
    with pytest.raises(ValueError, match=r"sequences\[1\] must be a 1-D tensor .*\(1, 2\)"):
        pad_batch([torch.tensor([1, 2]), torch.tensor([[1, 2]])])


# --- 6. a pruned model's state_dict into a fresh model ----------------------------------


def test_pruned_state_into_a_fresh_model_says_how_to_load_it():
    pruned = untrained_model()
    masking.set_masks(pruned, {"rnn.weight_hh_l0": torch.rand(20, 5) > 0.5})
    with pytest.raises(RuntimeError, match=r"rnn\.weight_hh_l0_mask.*checkpoints\.load_checkpoint"):
        untrained_model().load_state_dict(pruned.state_dict())


def test_torch_prune_state_into_a_fresh_model_says_to_remove_the_reparametrization():
    pruned = untrained_model()
    torch_prune.l1_unstructured(pruned.classifier, "weight", 0.5)
    with pytest.raises(RuntimeError, match=r"classifier\.weight_orig.*prune\.remove"):
        untrained_model().load_state_dict(pruned.state_dict())


def test_dense_state_dict_loads_as_before():
    source, target = untrained_model(), untrained_model()
    assert not target.load_state_dict(source.state_dict()).unexpected_keys
    assert all(
        torch.equal(a, b) for a, b in zip(source.parameters(), target.parameters(), strict=True)
    )


def test_pruned_state_with_strict_false_loads_the_masked_weights_like_torch():
    pruned = untrained_model()
    masking.set_masks(pruned, {"rnn.weight_hh_l0": torch.rand(20, 5) > 0.5})
    fresh = untrained_model()
    result = fresh.load_state_dict(pruned.state_dict(), strict=False)
    assert result.unexpected_keys == ["rnn.weight_hh_l0_mask"]
    assert torch.equal(fresh.rnn.weight_hh_l0, pruned.rnn.weight_hh_l0)


def test_model_knows_the_mask_suffix_of_the_pruning_package():
    from course_utils import models

    assert models.MASK_SUFFIX == masking.MASK_SUFFIX


# === Training, pruning and widgets ====================================================
# Hostile inputs to training, pruning and the widgets: each gets a clear error at the call.
#
# Pruned models stay pruned while they train, empty loaders and malformed batches are
# refused before any step, NaN logits are not reported as an accuracy, and the widgets
# neither substitute nor clamp what the learner asked for.


EMPTY = torch.utils.data.DataLoader([], batch_size=4)  # len 0, like drop_last on a tiny split
TINY_GAL = GALConfig(epochs=1, mask_every=1)


@pytest.fixture
def batch(task):
    _, (train_loader, _) = task
    return next(iter(train_loader))


def with_label(batch, label: int) -> tuple:
    """The same batch with its first label replaced (out of range for 3 classes)."""
    tokens, lengths, labels = batch
    labels = labels.clone()
    labels[0] = label
    return tokens, lengths, labels


# --- 1. a pruned model stays pruned while it trains --------------------------------------


def test_train_model_keeps_pruned_weights_at_exactly_zero(task):
    model, (train_loader, valid_loader) = task
    masks = {n: m.clone() for n, m in prune(model, 0.7).items()}
    train_model(model, train_loader, valid_loader, epochs=2, lr=0.05, progress=False)
    params = dict(model.named_parameters())
    assert set(get_masks(model)) == set(masks)
    for name, mask in masks.items():
        assert torch.equal(get_masks(model)[name], mask), name
        weight = params[name].detach()
        assert bool((weight[~mask] == 0).all()), name  # pruned entries exactly 0
        assert int((weight == 0).sum()) == int((~mask).sum()), name  # sparsity as the mask says


def test_gal_keeps_a_pruned_student_pruned(task):
    teacher, (train_loader, valid_loader) = task
    student = copy.deepcopy(teacher)
    masks = {n: m.clone() for n, m in prune(student, 0.6).items()}
    result = train_gal(teacher, train_loader, valid_loader, TINY_GAL, student=student)
    params = dict(result.student.model.named_parameters())
    for name, mask in masks.items():
        assert bool((params[name].detach()[~mask] == 0).all()), name


# --- 2. the criteria widget compares two different criteria, or says why not ---------------


def test_criteria_widget_defaults_to_magnitude_against_random_without_scores(task):
    model, (_, valid_loader) = task
    view = criteria_widget(model, valid_loader)
    assert view.view.criteria == ("magnitude", "random") and view.error.value == ""


def test_criteria_widget_defaults_to_magnitude_against_the_given_scores(task):
    model, (train_loader, valid_loader) = task
    scores = {"taylor": taylor_scores(model, train_loader, num_batches=2)}
    view = criteria_widget(model, valid_loader, scores=scores)
    assert view.view.criteria == ("magnitude", "taylor")


def test_criteria_widget_refuses_a_criterion_without_scores(task):
    model, (_, valid_loader) = task
    with pytest.raises(ValueError, match=r"criteria=.*\['taylor'\].*no scores.*choose from"):
        criteria_widget(model, valid_loader, criteria=("magnitude", "taylor"))


# --- 3. empty loaders: one clear error, before any step ------------------------------------


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda m, t, v: train_model(m, EMPTY, v, epochs=1), "train_loader yields no batches"),
        (lambda m, t, v: train_model(m, t, EMPTY, epochs=1), "valid_loader yields no batches"),
        (lambda m, t, v: evaluate(m, EMPTY), "loader yields no batches"),
        (lambda m, t, v: evaluate(m, iter([])), "loader yields no batches"),
        (lambda m, t, v: finetune(m, (EMPTY, v), epochs=1), "training loader yields no"),
        (lambda m, t, v: finetune(m, (t, EMPTY), epochs=1), "validation loader yields no"),
        (
            lambda m, t, v: agp_pruning(m, (EMPTY, v), 0.5, epochs=1, prune_epochs=1, frequency=1),
            "training loader yields no batches",
        ),
        (lambda m, t, v: snip_scores(m, EMPTY), "batch yields no batches"),
        (lambda m, t, v: snip_pruning(m, (EMPTY, v), 0.5, epochs=1), "training loader yields"),
        (lambda m, t, v: taylor_scores(m, EMPTY), "data yields no batches"),
        (lambda m, t, v: train_gal(m, EMPTY, v, TINY_GAL), "train_loader yields no batches"),
        (lambda m, t, v: train_gal(m, t, EMPTY, TINY_GAL), "valid_loader yields no batches"),
    ],
    ids=[
        "train_model-train",
        "train_model-valid",
        "evaluate",
        "evaluate-generator",
        "finetune-train",
        "finetune-valid",
        "agp_pruning",
        "snip_scores",
        "snip_pruning",
        "taylor_scores",
        "train_gal-train",
        "train_gal-valid",
    ],
)
def test_an_empty_loader_is_refused_before_any_step(task, call, pattern):
    model, (train_loader, valid_loader) = task
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match=pattern):
        call(model, train_loader, valid_loader)
    assert same_weights(model, before)


# --- 4. batches of the wrong shape, labels out of range -------------------------------------


def test_taylor_names_the_triple_it_expects_for_a_two_tuple_batch(task, batch):
    model, _ = task
    tokens, lengths, _ = batch
    with pytest.raises(ValueError, match=r"\(tokens, lengths, labels\).*got a 2-tuple"):
        taylor_scores(model, [(tokens, lengths)])


def test_train_model_names_the_triple_it_expects_for_a_two_tuple_batch(task, batch):
    model, (_, valid_loader) = task
    tokens, lengths, _ = batch
    with pytest.raises(ValueError, match=r"\(tokens, lengths, labels\).*got a 2-tuple"):
        train_model(model, [(tokens, lengths)], valid_loader, epochs=1)


@pytest.mark.parametrize("label", [3, -1])
def test_taylor_refuses_labels_out_of_range(task, batch, label):
    model, _ = task
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        taylor_scores(model, [with_label(batch, label)])


def test_snip_refuses_labels_out_of_range(task, batch):
    model, _ = task
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        snip_scores(model, with_label(batch, 3))


def test_movement_pruning_refuses_labels_out_of_range(task, batch):
    model, (_, valid_loader) = task
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        gradual_pruning(model, ([with_label(batch, 3)], valid_loader), 0.5, criterion="movement")
    assert same_weights(model, before)


def test_gal_refuses_labels_out_of_range(task, batch):
    model, (_, valid_loader) = task
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        train_gal(model, [with_label(batch, 3)], valid_loader, TINY_GAL)


# --- 5. NaN weights are reported, not averaged into an accuracy --------------------------


@pytest.mark.parametrize(
    ("tensor", "run", "message"),
    [
        ("embedding.weight", evaluate, r"logits contain NaN.*\['embedding.weight'\]"),
        ("classifier.bias", predict, r"\['classifier.bias'\].*corrupt"),
    ],
    ids=["evaluate", "predict"],
)
def test_nan_logits_are_refused_and_the_corrupt_weights_named(task, tensor, run, message):
    model, (_, valid_loader) = task
    with torch.no_grad():
        model.get_parameter(tensor).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=message):
        run(model, valid_loader)


# --- 6. pareto_front with NaN --------------------------------------------------------------


@pytest.mark.parametrize(
    ("costs", "scores", "pattern"),
    [
        ([1.0, float("nan"), 3.0], [0.5, 0.6, 0.7], r"costs\[1\] must be a finite number"),
        ([1.0, 2.0, 3.0], [0.5, 0.6, float("nan")], r"scores\[2\] must be a finite number"),
    ],
    ids=["nan-cost", "nan-score"],
)
def test_pareto_front_refuses_nan(costs, scores, pattern):
    with pytest.raises(ValueError, match=pattern):
        zoo.pareto_front(costs, scores)


# --- 7. predict_texts and iterables ------------------------------------------------------


@pytest.fixture
def model_and_vocab(synthetic_data):
    vocab, _, _ = synthetic_data
    torch.manual_seed(0)
    return RNNClassifier(len(vocab), 3, embed_dim=6, hidden_size=5, max_len=8).eval(), vocab


def test_predict_texts_reads_a_generator_like_a_list(model_and_vocab):
    model, vocab = model_and_vocab
    texts = ["the alpha of it", "", None, "gamma and beta"]
    want = robustness.predict_texts(model, vocab, texts)
    got = robustness.predict_texts(model, vocab, (t for t in texts))
    assert list(got) == list(want) and len(got) == 4


def test_predict_texts_refuses_one_bytes_text(model_and_vocab):
    model, vocab = model_and_vocab
    with pytest.raises(TypeError, match="texts must be a list of strings, got one bytes"):
        robustness.predict_texts(model, vocab, b"alpha beta")


# --- 8. the AGP widget: no clamped start value, no stale plot ---------------------------------


def test_agp_widget_refuses_final_below_initial_at_construction():
    with pytest.raises(ValueError, match=r"final sparsity must be >= initial=0.5, got final=0.3"):
        agp_schedule_widget(initial=0.5, final=0.3)


def test_agp_widget_refuses_frequency_zero_instead_of_clamping_it():
    with pytest.raises(ValueError, match=r"frequency must be in \[1, 500\], got 0"):
        agp_schedule_widget(frequency=0)


def test_agp_widget_clears_the_plot_when_a_slider_makes_the_schedule_invalid():
    widget = agp_schedule_widget(final=0.5)
    assert widget.curve is not None and len(widget.plot.value) > 0
    widget.initial.value = 0.9  # above s_f
    shown = html.unescape(widget.summary.value)
    assert "final sparsity must be >= initial=0.9, got final=0.5" in shown
    assert widget.curve is None and len(widget.plot.value) == 0


def test_widget_error_line_shows_markup_in_the_message_as_text():
    line = error_html(ValueError("token '<unk>' must not be pruned, got a < b"))
    assert "&lt;unk&gt;" in line and "a &lt; b" in line
    assert line.startswith("<span") and line.count("<") == 2  # the span's own tags only


# --- the pruning entry points check their arguments at the call ----------------------------


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda m, d: prune(m, -0.1), ValueError, r"sparsity must be in \[0, 1\), got -0.1"),
        (lambda m, d: prune(m, 1.5), ValueError, r"sparsity must be in \[0, 1\), got 1.5"),
        (lambda m, d: prune(m, "0.5"), TypeError, r"sparsity must be a number in \[0, 1\)"),
        (
            lambda m, d: one_shot_pruning(m, d, 0.5, epochs=1.0),
            TypeError,
            r"epochs must be a positive int, got 1.0 \(float\)",
        ),
        (
            lambda m, d: iterative_pruning(m, d, 0.5, rounds="3", epochs_per_round=1),
            TypeError,
            "rounds must be a positive int, got '3'",
        ),
        (
            lambda m, d: iterative_pruning(m, d, 0.5, rounds=2, epochs_per_round=None),
            TypeError,
            "epochs_per_round must be a positive int, got None",
        ),
        (
            lambda m, d: agp_pruning(m, d, 0.5, epochs=1, prune_epochs=1, frequency=2.5),
            TypeError,
            r"frequency must be an int >= 1, got 2.5",
        ),
        (
            lambda m, d: agp_pruning(m, d, 0.5, epochs=None, prune_epochs=1, frequency=1),
            TypeError,
            "epochs must be a positive int, got None",
        ),
        (
            lambda m, d: gradual_pruning(m, d, 0.5, frequency=None),
            TypeError,
            "frequency must be a positive int, got None",
        ),
        (
            lambda m, d: snip_pruning(m, d, 0.5, epochs=2.0),
            TypeError,
            "epochs must be a positive int, got 2.0",
        ),
        (
            lambda m, d: lottery_ticket(m, d, 0.5, epochs=0),
            ValueError,
            "epochs must be a positive int, got 0",
        ),
        (
            lambda m, d: lottery_ticket(m, d, 0.5, epochs=1, rewind_step=-1),
            ValueError,
            "rewind_step must be an int >= 0, got -1",
        ),
        (
            lambda m, d: finetune(m, d, epochs=1, lr=float("nan")),
            ValueError,
            "lr must be > 0, got nan",
        ),
        (
            lambda m, d: train_model(m, *d, epochs=True),
            TypeError,
            r"epochs must be a positive int, got True \(bool\)",
        ),
        (
            lambda m, d: taylor_scores(m, d[0], num_batches="3"),
            TypeError,
            "num_batches must be a positive int, got '3'",
        ),
        (
            lambda m, d: RunningTaylorScores(m, momentum=True),
            TypeError,
            r"momentum must be a number in \[0, 1\), got True",
        ),
        (lambda m, d: MovementScores(m, lr=-1), ValueError, "lr must be > 0, got -1"),
    ],
    ids=[
        "prune-negative",
        "prune-above-1",
        "prune-string",
        "one_shot-float-epochs",
        "iterative-string-rounds",
        "iterative-none-epochs",
        "agp-float-frequency",
        "agp-none-epochs",
        "gradual-none-frequency",
        "snip-float-epochs",
        "lottery-zero-epochs",
        "lottery-negative-rewind",
        "finetune-nan-lr",
        "train_model-bool-epochs",
        "taylor-string-batches",
        "running_taylor-bool-momentum",
        "movement-negative-lr",
    ],
)
def test_pruning_entry_points_refuse_bad_arguments_at_the_call(task, call, error, pattern):
    model, loaders = task
    before = copy.deepcopy(model)
    with pytest.raises(error, match=pattern):
        call(model, loaders)
    assert same_weights(model, before) and not get_masks(model)  # nothing ran


def test_a_wrong_type_is_a_type_error_that_old_value_error_handlers_still_catch():
    with pytest.raises(checks.ArgumentTypeError) as info:
        checks.positive_int("epochs", 2.5)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("check", "value", "error", "pattern"),
    [
        (checks.positive_int, True, TypeError, r"x must be a positive int, got True \(bool\)"),
        (checks.positive_int, 0, ValueError, "x must be a positive int, got 0"),
        (checks.fraction, math.nan, ValueError, r"x must be in \[0, 1\), got nan"),
        (checks.positive_number, math.inf, ValueError, "x must be > 0, got inf"),
        (checks.boolean, "no", TypeError, "x must be True or False, got 'no'"),
        (checks.finite_numbers, "12", TypeError, "x must be a list of numbers"),
    ],
    ids=["bool-as-int", "zero", "nan-fraction", "inf-number", "string-flag", "string-list"],
)
def test_shared_checks_name_the_argument_and_what_is_allowed(check, value, error, pattern):
    with pytest.raises(error, match=pattern):
        check("x", value)


# === Files: checkpoints, caches, compressed models, exports ===========================
# Hostile inputs for the files area: checkpoints, caches, compressed models, exports.
#
# Each test gives one crafted, damaged or unusual file (or argument) and checks that it is
# refused at the call, before any code in it runs or any large allocation happens, with
# an error that names the problem; or, for caches, that the learner still gets a trained
# model with one warning.


ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = BaselineConfig(
    max_len=24, hidden_size=6, embed_dim=6, epochs=1, max_vocab=500, batch_size=64
)
SEQ_LEN = 12


def small_model(**kwargs) -> RNNClassifier:
    torch.manual_seed(0)
    options = {"embed_dim": 8, "hidden_size": 6, "max_len": SEQ_LEN, **kwargs}
    return RNNClassifier(50, 4, **options).eval()


class Payload:
    """Unpickling this creates ``marker``: proof that code in a file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def torch_saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def cache_entries(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def cached_tiny(tmp_path_factory):
    """A folder holding the TINY baseline's cache entry, and that baseline."""
    folder = tmp_path_factory.mktemp("cache")
    return folder, get_baseline(TINY, cache_dir=folder, progress=False)


@pytest.fixture
def cache_copy(cached_tiny, tmp_path):
    """A private copy of the cached TINY entry: ``(folder, entry path, baseline)``."""
    folder, baseline = cached_tiny
    for f in folder.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path, next(tmp_path.glob("baseline-*.safetensors")), baseline


# --- checkpoints (safetensors) ------------------------------------------------------------


def rewrite_checkpoint(path: pathlib.Path, change, *, resign: bool = True) -> None:
    """Apply ``change(header)`` to a checkpoint's safetensors header, in place.

    With ``resign`` the checksum is recomputed (with the course's own digest), so that the
    file is refused for what ``change`` did and not for a checksum mismatch.
    """
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + size]), data[8 + size :]
    change(header)
    if resign:
        header["__metadata__"]["sha256"] = checkpoints._digest(header, memoryview(body))
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + body)


def lie_about_a_shape(header):  # 300,000 rows of the classifier, in the bytes of 4
    header["classifier.weight"]["shape"] = [300_000, 6]


def transpose_a_shape(header):  # the same bytes, read as (6, 4) instead of (4, 6)
    header["classifier.weight"]["shape"] = [6, 4]


def ask_for_a_huge_vocabulary(header):
    config = json.loads(header["__metadata__"]["config"])
    header["__metadata__"]["config"] = json.dumps({**config, "vocab_size": 10**12})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lie_about_a_shape, r"declares shape \[300000, 6\] of F32"),
        (transpose_a_shape, r"'classifier.weight' has shape \[6, 4\].*\[4, 6\]"),
        (ask_for_a_huge_vocabulary, r"vocab_size=1000000000000 .*at most 1000000"),
    ],
    ids=[
        "header_lies_about_a_shape",
        "shapes_do_not_fit_its_config",
        "huge_config_refused_before_allocating",
    ],
)
def test_checkpoint_whose_header_was_edited_and_resigned_is_refused(tmp_path, change, message):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, small_model())
    rewrite_checkpoint(path, change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_checkpoint_edited_without_its_checksum_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, small_model(), note="hello")

    def edit(header):
        header["__metadata__"]["extra"] = json.dumps({"note": "HELLO"})

    rewrite_checkpoint(path, edit, resign=False)
    with pytest.raises(CheckpointError, match="checksum does not match"):
        load_checkpoint(path)


def test_checkpoint_extra_that_is_not_json_is_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match=r"extra\['shape'\] is a tuple; .*JSON data"):
        save_checkpoint(tmp_path / "model.safetensors", small_model(), shape=(3, 4))
    assert not list(tmp_path.iterdir())


def test_checkpoint_of_a_pruned_model_round_trips_its_masks(tmp_path):
    model = small_model()
    prune(model, 0.7)
    save_checkpoint(tmp_path / "pruned.safetensors", model, metrics={"acc": 0.5})
    loaded, extra = load_checkpoint(tmp_path / "pruned.safetensors")
    assert same_weights(model, loaded) and extra == {"metrics": {"acc": 0.5}}
    assert loaded.rnn.weight_hh_l0_mask.dtype == torch.bool


# --- caches: modes, read-only folders, orphans, two writers ---------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_cache_entry_gets_the_mode_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert save_cached(tmp_path / "shared" / "entry.safetensors", small_model(), what="Test")
    finally:
        os.umask(old)
    (entry,) = (tmp_path / "shared").iterdir()  # one file: the checksum is inside
    assert entry.stat().st_mode & 0o777 == mode
    assert entry.stat().st_mode & 0o040  # group members can read it


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: creating files in ``folder`` raises PermissionError, as in a
    folder of another user (tests run as root, for whom chmod 555 does not stop writes)."""
    real_open = os.open

    def make(folder: pathlib.Path):
        folder = str(folder)

        def refuse(path, flags, *args, **kwargs):
            if str(path).startswith(folder) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)

    return make


def test_read_only_cache_still_returns_the_trained_baseline_with_one_warning(
    cached_tiny, tmp_path, read_only
):
    _, first = cached_tiny
    read_only(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        baseline = get_baseline(TINY, cache_dir=tmp_path, progress=False)
    messages = [str(w.message) for w in caught if "cache" in str(w.message)]
    assert len(messages) == 1 and "Baseline cache" in messages[0]
    assert "cannot be written (PermissionError" in messages[0]
    assert not baseline.from_cache and same_weights(baseline.model, first.model)
    assert baseline.metrics["test_accuracy"] == first.metrics["test_accuracy"]
    assert cache_entries(tmp_path) == []


def test_read_only_cache_still_returns_the_pruned_model_with_one_warning(
    cached_tiny, tmp_path, read_only
):
    _, baseline = cached_tiny
    read_only(tmp_path)
    options = {"budget": "tiny", "baseline": baseline, "cache_dir": tmp_path, "progress": False}
    with pytest.warns(UserWarning, match="Pruned-model cache .* cannot be written") as caught:
        pruned = zoo.pruned_model("magnitude_oneshot", 0.5, **options)
    assert len([w for w in caught if "cache" in str(w.message)]) == 1
    assert not pruned.from_cache and 0 <= pruned.metrics["test_accuracy"] <= 1
    assert cache_entries(tmp_path) == []


def test_unreadable_cache_entry_is_rebuilt_with_a_warning(cache_copy, monkeypatch):
    folder, entry, first = cache_copy
    real_read = pathlib.Path.read_bytes

    def refuse(self):
        if self == entry:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    with pytest.warns(UserWarning, match="cannot be read \\(PermissionError"):
        rebuilt = get_baseline(TINY, cache_dir=folder, progress=False)
    assert not rebuilt.from_cache and same_weights(rebuilt.model, first.model)


def test_orphan_temporary_file_is_removed_on_the_next_write(tmp_path):
    path = tmp_path / "entry.safetensors"
    orphan = tmp_path / ".entry.safetensors.k1ll3d.tmp"  # left by a killed writer
    orphan.write_bytes(b"half a file")
    old = time.time() - files.ORPHAN_SECONDS - 60
    os.utime(orphan, (old, old))
    busy = tmp_path / ".entry.safetensors.wr1t1ng.tmp"  # another writer, right now
    busy.write_bytes(b"being written")
    save_cached(path, small_model(), what="Test")
    assert not orphan.exists() and busy.exists()
    assert load_checkpoint(path)[0].config() == small_model().config()


def test_two_processes_filling_an_empty_cache_end_consistent(cached_tiny, tmp_path):
    _, first = cached_tiny
    script = (
        "import sys; from course_utils.experiments.baseline import BaselineConfig, get_baseline; "
        "c = BaselineConfig(max_len=24, hidden_size=6, embed_dim=6, epochs=1, "
        "max_vocab=500, batch_size=64); get_baseline(c, cache_dir=sys.argv[1], progress=False)"
    )
    env = {**os.environ, "COURSE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    (entry,) = cache_entries(tmp_path)  # one entry, no temporary file left
    assert entry.endswith(".safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = get_baseline(TINY, cache_dir=tmp_path, progress=False)
    assert again.from_cache and again.vocab.get_itos() == first.vocab.get_itos()


def test_cached_checkpoint_with_vocab_size_10_12_is_rebuilt_with_a_warning(cache_copy):
    folder, entry, first = cache_copy

    def huge(header):
        config = json.loads(header["__metadata__"]["config"])
        header["__metadata__"]["config"] = json.dumps({**config, "vocab_size": 10**12})

    rewrite_checkpoint(entry, huge)
    with pytest.warns(UserWarning, match=r"not usable.*vocab_size=1000000000000"):
        rebuilt = get_baseline(TINY, cache_dir=folder, progress=False)
    assert not rebuilt.from_cache and same_weights(rebuilt.model, first.model)
    assert get_baseline(TINY, cache_dir=folder, progress=False).from_cache


def test_old_pickle_cache_file_is_stale_rebuilt_and_never_unpickled(cache_copy):
    folder, entry, first = cache_copy
    marker = folder / "pwned"
    entry.unlink()
    old = entry.with_suffix(".pt")  # the cache of course_utils before safetensors
    old.write_bytes(torch_saved({"format": "course_utils.checkpoint/v1", "x": Payload(marker)}))
    old.with_suffix(".sha256").write_text(hashlib.sha256(old.read_bytes()).hexdigest())
    with pytest.warns(UserWarning, match="pickle-based format of older versions \\(stale\\)"):
        rebuilt = get_baseline(TINY, cache_dir=folder, progress=False)
    assert not marker.exists()
    assert not rebuilt.from_cache and same_weights(rebuilt.model, first.model)
    assert cache_entries(folder) == [entry.name]  # the old files are gone


def test_cached_baseline_whose_vocabulary_does_not_fit_is_rebuilt(cache_copy):
    folder, entry, first = cache_copy

    def fewer_words(header):
        extra = json.loads(header["__metadata__"]["extra"])
        extra["vocab"]["itos"] = extra["vocab"]["itos"][:10]
        header["__metadata__"]["extra"] = json.dumps(extra)

    rewrite_checkpoint(entry, fewer_words)
    with pytest.warns(UserWarning, match="10 words for .* embedding rows"):
        rebuilt = get_baseline(TINY, cache_dir=folder, progress=False)
    assert not rebuilt.from_cache and same_weights(rebuilt.model, first.model)


# --- get_baseline's arguments ----------------------------------------------------------------


def test_get_baseline_with_a_dict_says_to_pass_a_baseline_config():
    with pytest.raises(
        TypeError, match=r"config must be a BaselineConfig.*BaselineConfig\(epochs=1\)"
    ):
        get_baseline({"epochs": 1})


def test_get_baseline_with_an_unknown_field_names_the_fields():
    with pytest.raises(TypeError, match=r"unknown BaselineConfig field\(s\) \['epoch'\].*'epochs'"):
        get_baseline(epoch=1)


# --- compressed models -----------------------------------------------------------------------


def crafted_csr(config: dict) -> bytes:
    """A csr_int32 file for ``config`` whose matrices are all zero: a few bytes per row,
    however many columns, a consistent file that would decode to the full dense model."""
    with torch.device("meta"):
        shapes = {n: tuple(p.shape) for n, p in RNNClassifier(**config).named_parameters()}
    tensors, chunks = [], []
    for name, shape in shapes.items():
        if len(shape) == 1:
            arrays = {"values": torch.zeros(shape[0]).numpy()}
            encoding = "dense"
        else:
            values, col = torch.zeros(0).numpy(), torch.zeros(0, dtype=torch.int32).numpy()
            row_ptr = torch.zeros(shape[0] + 1, dtype=torch.int32).numpy()
            arrays, encoding = {"values": values, "col_index": col, "row_ptr": row_ptr}, "csr"
        tensors.append(
            {
                "name": name,
                "shape": list(shape),
                "encoding": encoding,
                "arrays": [[k, str(a.dtype), int(a.size)] for k, a in arrays.items()],
            }
        )
        chunks += [a.tobytes() for a in arrays.values()]
    payload = b"".join(chunks)
    header = {
        "format": "csr_int32",
        "version": compress.VERSION,
        "config": config,
        "tensors": tensors,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    blob = json.dumps(header).encode()
    return gzip.compress(compress.MAGIC + struct.pack("<I", len(blob)) + blob + payload)


def huge_config(**sizes) -> dict:
    return {**small_model().config(), **sizes}


def test_small_compressed_file_of_a_huge_model_is_refused_by_the_size_limits():
    data = crafted_csr(huge_config(embed_dim=300_000_000, hidden_size=4))
    assert len(data) < 2000  # 2.4 GB of float32 once decoded
    with pytest.raises(FormatError, match=r"embed_dim=300000000 .*at most 4096"):
        compress.decode_model(data)


def test_compressed_model_over_the_parameter_limit_is_refused_without_allocating():
    data = crafted_csr(huge_config(vocab_size=60_000, embed_dim=1000))  # 60 M parameters
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    with pytest.raises(FormatError, match=r"60,0\d\d,\d\d\d parameters.*at most 50,000,000"):
        compress.decode_model(data)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 100_000, f"decoding allocated {grown} kB before refusing"


@pytest.fixture(scope="module")
def gzipped():
    return compress.encode_model(small_model(), "dense_fp32_gzip")


def test_gzip_with_trailing_junk_is_refused(gzipped):
    with pytest.raises(FormatError, match="trailing data after the gzip stream"):
        compress.decode_model(gzipped + b"junk")


def test_gzip_with_a_flipped_crc_is_refused(gzipped):
    flipped = bytearray(gzipped)
    flipped[-8] ^= 0x01  # the CRC-32 of the gzip trailer
    with pytest.raises(FormatError, match="gzip CRC check failed: the file is corrupt"):
        compress.decode_model(bytes(flipped))


def test_gzip_with_a_flipped_size_is_refused(gzipped):
    flipped = bytearray(gzipped)
    flipped[-1] ^= 0x01  # the uncompressed size of the gzip trailer
    with pytest.raises(FormatError, match="gzip size check failed"):
        compress.decode_model(bytes(flipped))


# --- exported programs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported():
    model = small_model()
    return model, deploy.export_classifier(model, SEQ_LEN)


@pytest.fixture(scope="module")
def export_file(exported, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "model.pt2"
    deploy.save_exported(path, exported[1])
    return path


def rewrite_archive(source: pathlib.Path, target: pathlib.Path, change) -> None:
    """Copy a .pt2 archive, with ``change(entries)`` applied to ``{name: bytes}``."""
    with zipfile.ZipFile(source) as archive:
        root = archive.namelist()[0].split("/", 1)[0]
        entries = {n.split("/", 1)[1]: archive.read(n) for n in archive.namelist()}
    change(entries)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for name, content in entries.items():
            archive.writestr(f"{root}/{name}", content)


def pickled_weight(entries, marker):
    config = json.loads(entries["data/weights/model_weights_config.json"])
    meta = config["config"]["model.classifier.bias"]
    meta["use_pickle"] = True
    entries[f"data/weights/{meta['path_name']}"] = torch_saved(Payload(marker))
    entries["data/weights/model_weights_config.json"] = json.dumps(config).encode()


def opaque_constant(entries, marker):
    blob = pickle.dumps(Payload(marker))
    config = json.loads(entries["data/constants/model_constants_config.json"])
    config["config"]["evil"] = {
        "path_name": "opaque_obj_0",
        "is_param": False,
        "use_pickle": False,
        "tensor_meta": {
            "dtype": 1,  # uint8
            "sizes": [{"as_int": len(blob)}],
            "requires_grad": False,
            "device": {"type": "cpu", "index": None},
            "strides": [{"as_int": 1}],
            "storage_offset": {"as_int": 0},
            "layout": 7,
        },
    }
    entries["data/constants/model_constants_config.json"] = json.dumps(config).encode()
    entries["data/constants/opaque_obj_0"] = blob


def sympy_expression(entries, marker):
    program = entries["models/model.json"].decode()
    symbol = program[program.index("Symbol('") :].split(")", 1)[0] + ")"
    evil = f"__import__('builtins').open('{marker}', 'w') and {symbol}"
    entries["models/model.json"] = program.replace(symbol, evil, 1).encode()


def guard_code(entries, marker):
    program = json.loads(entries["models/model.json"])
    program["guards_code"] = [f"__import__('builtins').open('{marker}', 'w') is not None"]
    entries["models/model.json"] = json.dumps(program).encode()


def compiled_code(entries, marker):
    entries["data/aotinductor/model/model.so"] = b"\x7fELF" + bytes(60)


@pytest.mark.parametrize(
    "craft", [pickled_weight, opaque_constant, sympy_expression, guard_code, compiled_code]
)
def test_export_archive_that_would_run_code_is_refused(export_file, tmp_path, craft):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "model.pt2"
    rewrite_archive(export_file, crafted, lambda entries: craft(entries, marker))
    with pytest.raises(deploy.ExportError, match="not a plain one"):
        program = deploy.load_exported(crafted)
        program.module()(*padded_inputs(2))  # guards run at the first call
    assert not marker.exists()


def test_pickled_example_inputs_of_an_export_are_never_read(export_file, exported, tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "model.pt2"

    def pickled_inputs(entries):  # torch would retry an unrestricted unpickle of these
        entries["data/sample_inputs/model.pt"] = torch_saved(Payload(marker))

    rewrite_archive(export_file, crafted, pickled_inputs)
    program = deploy.load_exported(crafted)
    assert not marker.exists() and program.example_inputs is None
    tokens, lengths = padded_inputs(3)
    with torch.no_grad():
        got, expected = program.module()(tokens, lengths), exported[0](tokens, lengths)
    assert torch.allclose(got, expected, atol=1e-6)


def test_genuine_export_still_loads_and_matches_the_model(export_file, exported):
    model, _ = exported
    loaded = deploy.exported_module(deploy.load_exported(export_file))
    tokens, lengths = padded_inputs(5)
    with torch.no_grad():
        assert torch.allclose(loaded(tokens, lengths), model(tokens, lengths), atol=1e-6)


def padded_inputs(size: int, seed: int = 0) -> tuple:
    """``size`` rows of token ids padded to SEQ_LEN, lengths in [1, SEQ_LEN]."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, SEQ_LEN + 1, (size,), generator=g)
    tokens = torch.randint(1, 50, (size, SEQ_LEN), generator=g)
    tokens[torch.arange(SEQ_LEN)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths


def test_exported_module_refuses_a_length_of_zero(exported):
    tokens, lengths = padded_inputs(2)
    lengths[0] = 0
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, seq_len=12\].*got min 0"):
        deploy.exported_module(exported[1])(tokens, lengths)


def test_plain_exported_program_refuses_a_length_of_zero(exported):
    tokens, lengths = padded_inputs(2)
    lengths[1] = 0  # the graph checks it itself: no NaN logits
    with pytest.raises(RuntimeError, match=r"lengths must lie in \[1, seq_len=12\]"):
        exported[1].module()(tokens, lengths)


def test_exported_module_refuses_a_short_sequence_before_torchs_guard(exported):
    tokens, lengths = padded_inputs(2)
    with pytest.raises(ValueError, match=r"seq_len=12\), got \(2, 5\).*deploy.pad_to"):
        deploy.exported_module(exported[1])(tokens[:, :5], lengths.clamp(max=5))


def test_inference_classifier_refuses_a_length_of_zero():
    wrapper = deploy.InferenceClassifier(small_model(), SEQ_LEN)
    tokens, lengths = padded_inputs(2)
    lengths[0] = 0
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, seq_len=12\]"):
        wrapper(tokens, lengths)


def test_quantize_int8_names_a_cell_it_leaves_in_float32():
    with pytest.warns(UserWarning, match=r"cell='rnn' \(RNN\) has no dynamically quantized"):
        quantized = deploy.quantize_int8(small_model(cell="rnn"))
    assert type(quantized.rnn) is torch.nn.RNN


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_quantize_int8_quantizes_lstm_and_gru_without_a_warning(cell):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized = deploy.quantize_int8(copy.deepcopy(small_model(cell=cell)))
    assert not [w for w in caught if "float32" in str(w.message)]
    assert "quantized" in type(quantized.rnn).__module__


# === Exercise checks ==================================================================
# Hostile inputs for the exercise checks: what a learner's unfinished function does.
#
# Each test hands a check one wrong function and asserts the one line the learner reads:
# a function that returns None is told it forgot ``return`` (not that it raised, and not
# a type error about ``NoneType``); a stub is "not implemented yet"; a crash names the
# exception.


NOTHING_RETURNED = [
    # (check, a function of the exercise's signature whose body forgot `return`)
    (exercises.check_frequent_words, lambda docs, k: None),  # ch1: list(None) would raise
    (exercises.check_masked_mean, lambda out, lengths: None),  # ch1: a tensor is asserted
    (exercises.check_magnitude_mask, lambda w, s: None),  # ch2
    (exercises.check_agp_sparsity, lambda *args: None),  # ch2: a number is asserted
    (exercises.check_jaccard, lambda a, b: None),  # ch3
    (exercises.check_group_shrink, lambda w, t: None),  # ch4
    (exercises.check_mask_prox_step, lambda y, g, lr, lam: None),  # ch5
    (exercises.check_mask_outgoing, lambda w_hh, w_out, m: None),  # ch5: a pair is asserted
    (exercises.check_csr_encode, lambda m: None),  # ch6
]


@pytest.mark.parametrize(
    ("check", "fn"), NOTHING_RETURNED, ids=[c.__name__ for c, _ in NOTHING_RETURNED]
)
def test_a_function_that_returns_none_is_told_it_forgot_return(check, fn):
    result = check(fn)
    assert not result
    assert result.message == RETURNED_NONE
    assert repr(result).endswith("your function returned None -- did you forget `return`?")
    assert "raised" not in result.message


def test_a_function_that_updates_in_place_and_returns_nothing_is_told_so():
    def shrink_in_place(weight, threshold):  # the classic slip: right values, no return
        norms = weight.norm(dim=1, keepdim=True)
        weight.mul_((1 - threshold / norms.clamp_min(1e-12)).clamp_min(0))

    assert exercises.check_group_shrink(shrink_in_place).message == RETURNED_NONE


def test_none_on_a_later_case_only_is_still_a_missing_return():
    def forgets_on_zero(step, initial, final, start_step, end_step, frequency):
        if step == 0:
            return None  # a branch without a return value
        return final

    assert exercises.check_agp_sparsity(forgets_on_zero).message == RETURNED_NONE


def test_a_stub_is_not_implemented_yet_not_returned_none():
    def stub(docs, min_freq):
        raise NotImplementedError

    assert "not implemented yet" in exercises.check_frequent_words(stub).message


def test_a_function_that_crashes_is_named_with_its_exception():
    result = exercises.check_mask_prox_step(lambda y, g, lr, lam: y / torch.tensor("x"))
    assert not result and result.message.startswith("your function raised ")


def test_a_wrong_value_that_is_not_none_keeps_its_own_message():
    result = exercises.check_agp_sparsity(lambda *args: "0.5")
    assert not result and "expected a number" in result.message


def test_not_a_function_is_refused_by_the_check():
    result = exercises.check_group_shrink(None)
    assert not result and result.message == "expected a function, got NoneType"
