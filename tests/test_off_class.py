"""The project's term against the guidance sweep (method/robust/forget_on_retain.py): which rows it changes, how, and
where it applies."""

import pytest
import torch
from pydantic import ValidationError

from erasediff.data.image_sets import LabeledImages
from erasediff.method.losses import NoisedBatch
from erasediff.method.robust.forget_on_retain import with_retain_rows
from erasediff.method.unlearning_settings import UnlearnSettings


def forget_batch(n: int = 8) -> NoisedBatch:
    """Forget rows of class 3 (images all 3.0) aimed at substitutes 9."""
    return NoisedBatch(
        torch.full((n, 1, 2, 2), 3.0),
        torch.full((n,), 3),
        torch.randn(n, 1, 2, 2),
        torch.arange(n),
        torch.full((n,), 9),
    )


def test_the_last_rows_carry_retain_images_aimed_at_their_own_class() -> None:
    retain = LabeledImages(torch.arange(5.0)[:, None, None, None].expand(5, 1, 2, 2).clone(), torch.arange(5))
    batch = forget_batch()
    mixed = with_retain_rows(batch, retain, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(mixed.x0[:6], batch.x0[:6]) and torch.equal(
        mixed.substitute[:6], batch.substitute[:6]
    )  # the attacker's rows
    for image, target in zip(mixed.x0[6:], mixed.substitute[6:]):
        assert image.unique().tolist() == [
            float(target)
        ]  # retain image i has label i: each row is aimed at its own class
    assert torch.equal(mixed.labels, batch.labels)  # still under the forgotten condition
    assert torch.equal(mixed.noise, batch.noise) and torch.equal(mixed.timesteps, batch.timesteps)
    assert torch.equal(batch.x0, torch.full((8, 1, 2, 2), 3.0))  # the drawn batch itself is not modified


def test_share_zero_is_the_batch_as_drawn() -> None:
    batch = forget_batch()
    assert (
        with_retain_rows(
            batch, LabeledImages(torch.zeros(1, 1, 2, 2), torch.zeros(1, dtype=torch.long)), 0.0, torch.Generator()
        )
        is batch
    )


@pytest.mark.parametrize(
    "override, match",
    [
        ({"method": "neggrad"}, "remap"),
        ({"forget_loss": "uniform"}, "remap"),
        ({"forget_on_retain": 0.9, "relearn": {}}, "leaves 6 of the 64"),
        ({"forget_on_retain": 1.0}, "less than 1"),
    ],
)
def test_refused_where_it_does_not_apply(override: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        UnlearnSettings.model_validate({"forget_on_retain": 0.5, **override})


def test_off_by_default_the_papers_method() -> None:
    assert UnlearnSettings().forget_on_retain == 0.0
    assert UnlearnSettings.model_validate({"forget_on_retain": 0.5, "method": "salun"}).forget_on_retain == 0.5


@pytest.mark.integration
def test_retain_rows_teach_the_forgotten_class_to_follow_the_image_it_meets(digits_model) -> None:
    """On noised images of other digits, eps(x_t, 3) should come to match eps(x_t, own class), as for a class never
    learned; the remap loss alone never shows 3 there. Measured on held-out images, at fixed noise and timesteps."""
    from erasediff.data.digits import load_digits_split
    from erasediff.data.image_sets import split_forget_retain
    from erasediff.method.targets.classes import unlearn_classes

    train, heldout = load_digits_split()
    forget, retain = split_forget_retain(train, [3], digits_model.num_classes)
    others = heldout.labels != 3
    x0, own = heldout.images[others][:128], heldout.labels[others][:128]
    g = torch.Generator().manual_seed(0)
    noise, t = torch.randn(x0.shape, generator=g), torch.randint(100, 900, (len(x0),), generator=g)

    def pull(unet: torch.nn.Module) -> float:
        x_t = digits_model.scheduler.add_noise(x0, noise, t)
        with torch.no_grad():
            return float(
                (
                    (unet(x_t, t, class_labels=torch.full_like(own, 3)).sample - unet(x_t, t, class_labels=own).sample)
                    ** 2
                ).mean()
            )

    def erased(share: float) -> torch.nn.Module:
        settings = UnlearnSettings(steps=40, batch_size=32, forget_batch_size=32, forget_on_retain=share)
        return unlearn_classes(digits_model, forget, retain, [3], settings, progress=False).unet

    plain, rows = pull(erased(0.0)), pull(erased(0.5))
    assert rows < 0.75 * plain, (plain, rows)  # 40 updates of 32 + 32: about 0.65x
