"""Chapter 5's equal-size comparison: distillation, fine-tuning, rows and the verdict."""

import copy

import pytest
import torch

from course_utils.experiments.comparison import compare_medians, summarize
from course_utils.experiments.gan_comparison import (
    UNIT_METHODS,
    UnitBudget,
    adversarial_verdict,
    compare_unit_pruning,
    distillation_loss,
    finetune_pruned,
    gal_for,
    method_summary,
    prune_to_units,
)
from course_utils.models import RNNClassifier
from course_utils.pruning.gan import GALConfig
from course_utils.pruning.gradient import taylor_unit_scores
from course_utils.text import make_loader
from course_utils.train import train_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


class TinyBaseline:
    """What the comparison needs from a Baseline, on the synthetic task."""

    def __init__(self, model, datasets, seed=0):
        self.model, self.datasets, self.seed = model, datasets, seed

    def loader(self, split, batch_size=None, *, shuffle=None, seed=None):
        shuffle = split == "train" if shuffle is None else shuffle
        return make_loader(self.datasets[split], batch_size or 16, shuffle=shuffle, seed=seed or 0)

    def copy_model(self):
        return copy.deepcopy(self.model)


@pytest.fixture
def tiny_baseline(synthetic_data):
    vocab, train, valid = synthetic_data
    torch.manual_seed(0)
    model = RNNClassifier(len(vocab), 3, embed_dim=8, hidden_size=8)
    datasets = {"train": train, "valid": valid, "test": valid}
    baseline = TinyBaseline(model, datasets)
    train_model(
        model, baseline.loader("train"), baseline.loader("valid"), epochs=6, lr=1e-2, progress=False
    )
    return baseline


def test_distillation_loss_is_hintons_formula():
    g = torch.Generator().manual_seed(0)
    teacher = RNNClassifier(30, 3, embed_dim=4, hidden_size=5).eval()
    student = RNNClassifier(30, 3, embed_dim=4, hidden_size=5)
    tokens = torch.randint(1, 30, (4, 6), generator=g)
    lengths, labels = torch.full((4,), 6), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        t = teacher(tokens, lengths)
    s = student(tokens, lengths)
    T = 3.0
    p_t, log_p_s = torch.softmax(t / T, 1), torch.log_softmax(s / T, 1)
    kl = (p_t * (torch.log(p_t) - log_p_s)).sum(1).mean()
    ce = torch.nn.functional.cross_entropy(s, labels)
    batch = (tokens, lengths, labels)
    assert torch.allclose(
        distillation_loss(teacher, temperature=T, alpha=1.0)(student, batch), T**2 * kl, atol=1e-5
    )
    assert torch.allclose(distillation_loss(teacher, temperature=T, alpha=0.0)(student, batch), ce)
    mixed = distillation_loss(teacher, temperature=T, alpha=0.25)(student, batch)
    assert torch.allclose(mixed, 0.25 * T**2 * kl + 0.75 * ce, atol=1e-5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distillation_loss(teacher, temperature=0)
    with pytest.raises(ValueError, match="alpha must be in"):
        distillation_loss(teacher, alpha=1.5)


def test_finetune_pruned_keeps_the_start_when_fine_tuning_hurts(tiny_baseline):
    model = tiny_baseline.copy_model()
    start = copy.deepcopy(model.state_dict())
    info = finetune_pruned(model, tiny_baseline, epochs=1, lr=50.0, seed=0)  # a wrecking lr
    assert info["kept_epoch"] == 0 and info["valid_after"] == info["valid_before"]
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    gentle = finetune_pruned(
        model, tiny_baseline, epochs=1, lr=1e-4, seed=0, teacher=tiny_baseline.model
    )
    assert gentle["valid_after"] >= gentle["valid_before"]


def test_every_method_prunes_to_the_same_size_and_gets_a_row(tiny_baseline):
    budget = UnitBudget(
        units=3,
        gal=GALConfig(epochs=1, lam=0.2),
        gl_epochs=1,
        ft_epochs=1,
        taylor_batches=2,
        train_batches=3,
    )
    for method in UNIT_METHODS:
        model, scores = prune_to_units(method, tiny_baseline, budget)
        assert model.rnn.hidden_size == 3 and list(scores) == [(0, 0)], method
    models = {}
    rows = compare_unit_pruning(tiny_baseline, budget=budget, models=models, progress=False)
    assert [r["method"] for r in rows] == list(UNIT_METHODS)
    assert set(models) == {(m, 0) for m in UNIT_METHODS}
    assert all(m.rnn.hidden_size == 3 and not m.training for m in models.values())
    for r in rows:
        assert r["units"] == 3 and r["sparsity"] == pytest.approx(5 / 8)
        assert all(0 <= r[k] <= 1 for k in ("test_before", "test_accuracy", "valid_accuracy"))
        assert r["valid_accuracy"] >= r["valid_before"]  # the start is kept if better
    assert len(method_summary(rows)) == len(UNIT_METHODS)
    assert [r["method"] for r in summarize(rows, by="method")] == list(UNIT_METHODS)
    assert adversarial_verdict(rows)["verdict"] == "one seed"
    with pytest.raises(ValueError, match="unknown method='pagerank'; choose from"):
        prune_to_units("pagerank", tiny_baseline, budget)
    with pytest.raises(ValueError, match="unknown method='taylor'"):  # unstructured: no units
        compare_unit_pruning(tiny_baseline, ["taylor"], budget)
    with pytest.raises(ValueError, match="units must be a positive int"):
        UnitBudget(units=0)
    assert "first 3 batches" in budget.describe()


def test_unit_taylor_gate_runs_by_name_with_the_gate_form(tiny_baseline):
    assert "unit_taylor_gate" not in UNIT_METHODS  # chapter 5's default line-up is unchanged
    budget = UnitBudget(units=3, taylor_batches=2, train_batches=3)
    model, scores = prune_to_units("unit_taylor_gate", tiny_baseline, budget)
    _, group = prune_to_units("unit_taylor", tiny_baseline, budget)
    loader = budget.data(tiny_baseline).loader("train", seed=tiny_baseline.seed)
    gate = taylor_unit_scores(tiny_baseline.model, loader, num_batches=2, form="gate")
    assert torch.equal(scores[(0, 0)], gate[(0, 0)])
    assert not torch.equal(scores[(0, 0)], group[(0, 0)])
    assert model.rnn.hidden_size == 3


def test_gal_trains_with_the_unit_budget_unless_told_not_to(tiny_baseline):
    gal = GALConfig(epochs=3, lam=0.2, lam_growth=1.1, mask_lr=0.2, mask_every=1)
    budget = UnitBudget(units=3, gal=gal, train_batches=4)
    for adversarial in (True, False):
        result = gal_for(tiny_baseline, budget, adversarial=adversarial, progress=False)
        assert set(result.history["budget_met_step"]) == {(0, 0)}
        assert 1 <= result.units_alive()[(0, 0)] <= 3  # the cut to 3 units is exact
        assert result.history["lam"][-1] == 0.0
    assert "until 3 units are left" in budget.describe()
    fixed = UnitBudget(units=3, gal=gal, gal_budget=False, train_batches=4)
    result = gal_for(tiny_baseline, fixed, progress=False)
    assert result.history["budget_met_step"] == {}
    assert set(result.history["lam"]) == {0.2}  # λ stays where it was set
    assert "λ 0.2," in fixed.describe()


@pytest.fixture
def two_layer_baseline(synthetic_data):
    """A bidirectional two-layer LSTM on the synthetic task: four (layer, direction) slots."""
    vocab, train, valid = synthetic_data
    torch.manual_seed(0)
    model = RNNClassifier(
        len(vocab), 3, embed_dim=8, hidden_size=8, num_layers=2, bidirectional=True
    )
    baseline = TinyBaseline(model, {"train": train, "valid": valid, "test": valid})
    train_model(
        model, baseline.loader("train"), baseline.loader("valid"), epochs=3, lr=1e-2, progress=False
    )
    return baseline


@pytest.mark.parametrize("lam", [0.05, 2.0])  # every mask alive / every mask at 0
def test_gal_with_a_fixed_lambda_is_cut_to_exactly_the_units_by_its_largest_masks(
    two_layer_baseline, lam
):
    """The budget met by top-k on the final masks: no unit budget, then keep the largest."""
    units, slots = 3, [(0, 0), (0, 1), (1, 0), (1, 1)]
    gal = GALConfig(epochs=2, lam=lam, mask_lr=0.2, mask_every=1)
    budget = UnitBudget(units=units, gal=gal, gal_budget=False, train_batches=4)
    model, masks = prune_to_units("gal", two_layer_baseline, budget, progress=False)
    assert model.rnn.hidden_size == units and list(masks) == slots  # 3 units in every slot
    result = gal_for(two_layer_baseline, budget, progress=False)  # the same run again
    assert result.history["budget_met_step"] == {} and set(result.history["lam"]) == {lam}
    assert all(torch.equal(result.masks[s], masks[s]) for s in slots)
    # the oracle: the student at its masks with all but the 3 largest per slot set to 0
    top = {}
    for slot, m in masks.items():
        keep = torch.sort(torch.sort(m, descending=True, stable=True).indices[:units]).values
        top[slot] = torch.zeros_like(m).index_copy(0, keep, m[keep])
    tokens, lengths, _ = next(iter(two_layer_baseline.loader("valid")))
    with torch.no_grad():
        want = result.student(tokens, lengths, masks=top)
        assert torch.allclose(model(tokens, lengths), want, atol=1e-5)
    alive = {slot: int((m > 0).sum()) for slot, m in masks.items()}
    if lam == 0.05:
        assert all(n > units for n in alive.values())  # the top-k cut did the choosing
    else:
        # λ too strong: every mask is 0, so the cut keeps units 0, 1 and 2 (ties go to the
        # lower index), all reading 0: the model gives one answer for every text
        assert alive == dict.fromkeys(slots, 0)
        assert torch.allclose(want, want[:1].expand_as(want))


def rows_for(gal, ablation):
    return [
        {"method": m, "sparsity": 0.75, "seed": s, "test_accuracy": v}
        for m, values in (("gal", gal), ("gal_no_adv", ablation))
        for s, v in enumerate(values)
    ]


def test_the_verdict_follows_the_numbers():
    better = adversarial_verdict(rows_for([0.95, 0.96, 0.94], [0.90, 0.91, 0.92]))
    assert better["verdict"] == "better" and better["sentence"].startswith(
        "Does the adversarial term help? yes"
    )
    assert better["median_difference"] == pytest.approx(0.04)
    assert better["paired_differences"] == pytest.approx([0.05, 0.05, 0.02])
    overlap = adversarial_verdict(rows_for([0.95, 0.92, 0.94], [0.93, 0.91, 0.96]))
    assert overlap["verdict"] == "no clear difference" and "not measurably" in overlap["sentence"]
    worse = adversarial_verdict(rows_for([0.90, 0.91, 0.89], [0.95, 0.94, 0.93]))
    assert worse["verdict"] == "worse" and "no: GAL is worse" in worse["sentence"]
    with pytest.raises(ValueError, match="need both"):
        adversarial_verdict(rows_for([0.9], [])[:1])
    assert "GAL 95.0 % (94.0-96.0), ablation 91.0 % (90.0-92.0)" in better["sentence"]
    one = adversarial_verdict(rows_for([0.95], [0.90]))["sentence"]
    assert "GAL 95.0 % (95.0-95.0), ablation 90.0 % (90.0-90.0)" in one  # always a range


def test_chapter_5_rows_name_a_method_not_a_criterion():
    rows = rows_for([0.95, 0.96, 0.94], [0.90, 0.91, 0.92])
    assert compare_medians(rows, "gal", "gal_no_adv", by="method")[0]["verdict"] == "better"
    assert summarize(rows, by="method")[0] == {"method": "gal", "75 %": "95.0 (94.0-96.0)"}
    with pytest.raises(KeyError, match="criterion"):
        summarize(rows)  # the default reads chapter 3's rows
    with pytest.raises(ValueError, match="unknown by='name'"):
        summarize(rows, by="name")
    table = method_summary(
        [{**r, "units": 32, "test_before": 0.5, "dense_test": 0.97} for r in rows]
    )
    assert [r["method"] for r in table] == [
        "GAL (GAN-guided masks)",
        "ablation: distillation + L1 masks, no D",
    ]
    assert table[0]["drop vs dense (points)"] == "2.0 (1.0 to 3.0)"


def _rows(table: dict[str, list[float]]) -> list[dict]:
    return [
        {"method": method, "seed": seed, "sparsity": 0.75, "test_accuracy": value}
        for method, values in table.items()
        for seed, value in enumerate(values)
    ]


def test_simplest_sufficient_recommends_the_simplest_method_not_clearly_behind():
    from course_utils.experiments.gan_comparison import simplest_sufficient

    # the numbers of chapter 5's committed run (after fine-tuning)
    rows = _rows(
        {
            "gal": [0.925, 0.897, 0.918],
            "gal_no_adv": [0.897, 0.915, 0.906],
            "group_lasso": [0.937, 0.894, 0.920],
            "unit_magnitude": [0.923, 0.920, 0.925],
            "unit_taylor": [0.873, 0.873, 0.913],
        }
    )
    result = simplest_sufficient(rows)
    assert result["best"] == "unit_magnitude" and result["simplest"] == "unit_magnitude"
    assert result["verdict"] == "simplest is best"
    assert "use it on this task" in result["sentence"]


def test_a_clearly_better_elaborate_method_is_recommended_over_a_simple_one():
    from course_utils.experiments.gan_comparison import simplest_sufficient

    rows = _rows({"gal": [0.95, 0.96, 0.94], "unit_magnitude": [0.90, 0.91, 0.89]})
    result = simplest_sufficient(rows)
    assert result["verdicts"] == {"unit_magnitude": "worse"}
    assert result["simplest"] == "gal"


def test_when_ranges_overlap_the_simpler_method_wins_even_with_a_lower_median():
    from course_utils.experiments.gan_comparison import simplest_sufficient

    rows = _rows({"gal": [0.95, 0.91, 0.93], "unit_magnitude": [0.92, 0.90, 0.94]})
    result = simplest_sufficient(rows)
    assert result["best"] == "gal" and result["simplest"] == "unit_magnitude"
    assert result["verdict"] == "simpler is as good"


def test_one_seed_cannot_rank_methods():
    from course_utils.experiments.gan_comparison import simplest_sufficient

    result = simplest_sufficient(_rows({"gal": [0.95], "unit_magnitude": [0.90]}))
    assert result["verdict"] == "one seed" and "cannot rank" in result["sentence"]
