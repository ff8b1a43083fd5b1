"""`unlearning.forget_row: null` (method/robust/forget_row.py): once erased, a forgotten class's embedding row becomes
the
null class's. It must change that row and nothing else, make guidance cancel on the label, and be refused where a
model has no such row."""

import copy
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError

from erasediff.attacks.class_attacks import ClassAttackSettings, run_class_attacks
from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import CaptionedImages, split_forget_retain
from erasediff.method.robust.forget_row import null_forgotten_rows
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.targets.concept import unlearn_concept
from erasediff.method.unlearning_settings import PAPER_PLAIN, UnlearnSettings
from erasediff.models.sampling import sample_classes
from erasediff.request.schema import ErasureRequest, load_request
from erasediff.util.errors import ErasediffError

CONFIGS = Path(__file__).parents[1] / "configs"
SETTINGS = {"steps": 3, "batch_size": 16, "forget_batch_size": 16}


def test_off_by_default_and_on_in_the_digits_request() -> None:
    assert UnlearnSettings().forget_row == "keep" and PAPER_PLAIN["forget_row"] == "keep"
    assert load_request(CONFIGS / "request_digits_forget_3.yaml").unlearning.forget_row == "null"


def test_it_sets_the_forgotten_rows_to_the_null_row_and_nothing_else(digits_model) -> None:
    unet = copy.deepcopy(digits_model.unet)
    before = unet.class_embedding.weight.detach().clone()
    null_forgotten_rows(unet, [3, 7], digits_model.null_class)
    after = unet.class_embedding.weight.detach()
    assert torch.equal(after[3], before[digits_model.null_class]) and torch.equal(
        after[7], before[digits_model.null_class]
    )
    kept = [c for c in range(len(before)) if c not in (3, 7)]
    assert torch.equal(after[kept], before[kept]) and not torch.equal(before[3], before[digits_model.null_class])


def test_guidance_cancels_on_the_nulled_label(digits_model) -> None:
    """eps_c = eps_null on the label, so (1 + w) eps_c - w eps_null is the same for every w: no guidance to sweep."""
    unet = copy.deepcopy(digits_model.unet)
    labels = torch.full((4,), 3)
    sample = lambda scale: sample_classes(
        unet, digits_model.scheduler, labels, digits_model.null_class, scale, 4, "ddim", 0, 4, False
    )  # noqa: E731
    assert not torch.allclose(sample(1.0), sample(9.0), atol=1e-4)
    null_forgotten_rows(unet, [3], digits_model.null_class)
    assert torch.allclose(sample(1.0), sample(9.0), atol=1e-4)


def test_the_erasure_itself_is_the_same_and_only_the_row_differs(digits_model) -> None:
    train, _ = load_digits_split()
    forget, retain = split_forget_retain(train, [3], digits_model.num_classes)
    keep = unlearn_classes(
        digits_model, forget, retain, [3], UnlearnSettings(**SETTINGS), progress=False
    ).unet.state_dict()
    nulled = unlearn_classes(
        digits_model, forget, retain, [3], UnlearnSettings(**SETTINGS, forget_row="null"), progress=False
    ).unet.state_dict()
    table = "class_embedding.weight"
    assert all(torch.equal(keep[k], nulled[k]) for k in keep if k != table)
    assert torch.equal(nulled[table][3], nulled[table][digits_model.null_class]) and torch.equal(
        nulled[table][:3], keep[table][:3]
    )
    assert not torch.equal(
        digits_model.unet.class_embedding.weight[3], digits_model.unet.class_embedding.weight[digits_model.null_class]
    )


def test_refused_where_there_is_no_class_row() -> None:
    with pytest.raises(ErasediffError, match="no class-embedding table"):
        null_forgotten_rows(torch.nn.Linear(2, 2), [3], 10)
    images = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ErasediffError, match="text-to-image pipeline has none"):
        unlearn_concept(
            None,
            CaptionedImages(images, ["a seven"] * 2),
            CaptionedImages(images, ["a two"] * 2),
            ["a two"],
            UnlearnSettings(forget_row="null"),
            progress=False,
        )
    raw = yaml.safe_load((CONFIGS / "request_text_digits_forget_seven.yaml").read_text())
    raw["unlearning"]["advanced"]["forget_row"] = "null"
    with pytest.raises(ValidationError, match="a text-to-image pipeline has none"):
        ErasureRequest.model_validate(raw)


def test_relearning_under_the_inverted_row_does_not_go_through_the_erased_row(digits_model, digits_classifier) -> None:
    """The attack suite's answer to the null row: relearn_inverted reads the same on a model whatever its row for 3,
    while relearn_forget, which relearns under the label, does not."""
    _, heldout = load_digits_split()
    threes = heldout.images[heldout.labels == 3]
    settings = ClassAttackSettings(
        k=4,
        samples=8,
        inversion_steps=3,
        relearn_steps=2,
        sampling_steps=3,
        attacks=["relearn_forget", "relearn_inverted"],
    )
    nulled = copy.deepcopy(digits_model)
    null_forgotten_rows(nulled.unet, [3], nulled.null_class)
    plain, after = (
        run_class_attacks(m, 3, threes, threes, torch.full((len(threes),), 3), digits_classifier, settings)
        for m in (digits_model, nulled)
    )
    assert torch.equal(plain["relearn_inverted"].samples, after["relearn_inverted"].samples)
    assert not torch.equal(plain["relearn_forget"].samples, after["relearn_forget"].samples)
