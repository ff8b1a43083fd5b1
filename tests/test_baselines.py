"""The baselines EraseDiff is compared with: each gradient rule on hand-computed gradients, and each method
moving the digits model in its expected direction (the same settings family as benchmarks/tradeoff.py)."""

import math

import pytest
import torch

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import CaptionedImages, split_forget_retain
from erasediff.defaults.digits_models import MODEL_DIR
from erasediff.evaluation.class_accuracy import class_scores, mean_accuracy
from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.method.baselines.rules import finetune_update, neggrad_update, saliency_masks, salun_update
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.targets.concept import unlearn_concept
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.class_model import load_class_model
from erasediff.models.text_pipeline import load_text_to_image
from erasediff.util.errors import ErasediffError

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

A, B = torch.tensor([1.0, -2.0, 0.5, 3.0]), torch.tensor([0.0, 1.0, 4.0, -1.5])


def toy() -> tuple[torch.nn.Parameter, callable, callable]:
    """L_r = ||p - A||^2 and L_f = ||p - B||^2 at p = 0: g_r = -2A, g_f = -2B."""
    p = torch.nn.Parameter(torch.zeros(4))
    return p, lambda: ((p - A) ** 2).sum(), lambda: ((p - B) ** 2).sum()


def test_finetune_follows_the_retain_gradient_only() -> None:
    p, retain, _ = toy()
    stats = finetune_update([p], retain, lambda g: g)
    assert torch.allclose(p.grad, -2 * A)
    assert stats.forget_loss is None and stats.retain_loss == pytest.approx(float((A**2).sum()))


def test_neggrad_ascends_the_forget_loss_and_descends_the_retain_loss() -> None:
    p, retain, forget = toy()
    neggrad_update([p], retain, forget, 0.5, lambda g: g)
    assert torch.allclose(p.grad, -2 * A - 0.5 * (-2 * B))


def test_salun_changes_only_the_salient_weights() -> None:
    p, retain, forget = toy()
    (mask,) = saliency_masks([p], [forget], 0.5, lambda g: g)
    assert mask.tolist() == [0.0, 0.0, 1.0, 1.0]  # |g_f| = 2|B| = [0, 2, 8, 3]: the top half
    salun_update([p], retain, forget, 0.25, [mask], lambda g: g)
    assert torch.allclose(p.grad, mask * (-2 * B + 0.25 * (-2 * A)))


SETTINGS = {"steps": 30, "batch_size": 32, "forget_batch_size": 32, "lr": 1e-4}
EVAL = EvalSettings(samples_per_class=20, steps=20)
RUNS = {
    "erasediff": {"method": "erasediff"},
    "erasediff-const": {"method": "erasediff", "lambda": {"mode": "constant", "value": 0.1}},
    "finetune": {"method": "finetune"},
    "neggrad": {"method": "neggrad"},
    "salun": {"method": "salun"},
    "esd": {"method": "esd", "esd": {"sampling_steps": 10}},
}


@pytest.fixture(scope="module")
def digits_sets(digits_model):
    train, _ = load_digits_split(digits_model.unet.config.sample_size)
    return split_forget_retain(train, [3], digits_model.num_classes)


@pytest.fixture(scope="module")
def outcomes(digits_model, digits_classifier, digits_sets):
    """Each method for 30 steps of 32 + 32 on "forget class 3": (model, per-step metrics, class scores)."""
    forget, retain = digits_sets
    out = {"base": (digits_model, [], class_scores(digits_model, digits_classifier, EVAL, progress=False))}
    for name, overrides in RUNS.items():
        rows = []
        model = unlearn_classes(
            digits_model,
            forget,
            retain,
            [3],
            UnlearnSettings.model_validate({**SETTINGS, **overrides}),
            callback=rows.append,
            progress=False,
        )
        out[name] = (model, rows, class_scores(model, digits_classifier, EVAL, progress=False))
    return out


RETAINED = [c for c in range(10) if c != 3]


@pytest.mark.parametrize("method", ["erasediff", "neggrad", "salun", "esd"])
def test_erasing_methods_lower_forgotten_class_accuracy(outcomes, method: str) -> None:
    before, after = outcomes["base"][2][3].accuracy, outcomes[method][2][3].accuracy
    assert before >= 0.9
    assert after <= 0.5, f"{method}: class 3 still drawn {after:.0%} of the time"


def test_finetune_keeps_retained_accuracy_and_does_not_erase(outcomes) -> None:
    base, tuned = outcomes["base"][2], outcomes["finetune"][2]
    assert mean_accuracy(tuned, RETAINED) >= mean_accuracy(base, RETAINED) - 0.05
    assert tuned[3].accuracy >= 0.8  # neglect alone does not forget in this budget


def test_constant_lambda_erasediff_pushes_the_forget_loss_down(outcomes) -> None:
    rows = outcomes["erasediff-const"][1]
    assert all(r.lambda_t == 0.1 for r in rows)
    first, last = (sum(r.forget_loss for r in part) / 5 for part in (rows[:5], rows[-5:]))
    assert last < first


def test_neggrad_raises_the_forget_set_diffusion_loss(outcomes) -> None:
    rows = outcomes["neggrad"][1]
    assert rows[-1].forget_loss > 2 * rows[0].forget_loss
    assert rows[0].lambda_t is None  # nothing EraseDiff-specific is logged for a baseline


def test_salun_changes_at_most_its_mask_fraction_of_the_weights(digits_model, outcomes) -> None:
    base = dict(digits_model.unet.named_parameters())
    changed = total = 0
    for name, p in outcomes["salun"][0].unet.named_parameters():
        changed += int((p != base[name]).sum())
        total += p.numel()
    assert 0.05 * total < changed <= math.ceil(0.5 * total)  # the top half, rounded up


def test_esd_needs_no_retain_loss_and_keeps_the_base_model(digits_model, digits_folder, outcomes) -> None:
    rows = outcomes["esd"][1]
    assert all(r.retain_loss is None for r in rows)
    assert all(r.wall_s > 0 for r in rows) and rows[-1].wall_s > rows[0].wall_s
    reloaded = dict(load_class_model(digits_folder / MODEL_DIR).unet.named_parameters())
    assert all(torch.equal(p, reloaded[n]) for n, p in digits_model.unet.named_parameters())


def test_esd_on_a_text_pipeline_uses_the_empty_prompt_and_needs_no_anchors(tiny_sd_dir) -> None:
    pipe = load_text_to_image(tiny_sd_dir)
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    forget, retain = (
        CaptionedImages(images[:4], ["a nude person"] * 4),
        CaptionedImages(images[4:], ["a dressed person"] * 4),
    )
    tiny = {"steps": 2, "batch_size": 2, "forget_batch_size": 2, "lr": 1e-3}
    unet = unlearn_concept(
        pipe, forget, retain, [], UnlearnSettings(**tiny, method="esd", esd={"sampling_steps": 3}), progress=False
    )
    assert any(not torch.equal(p, q) for p, q in zip(unet.parameters(), pipe.unet.parameters()))
    with pytest.raises(ErasediffError, match="anchors is empty"):
        unlearn_concept(pipe, forget, retain, [], UnlearnSettings(**tiny, method="salun"), progress=False)
