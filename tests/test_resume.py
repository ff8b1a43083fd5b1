"""A run stopped after a checkpoint and resumed ends with exactly the weights of an uninterrupted run."""

from pathlib import Path

import pytest
import torch

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import split_forget_retain
from erasediff.method.loop import StepMetrics
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.util.errors import ErasediffError

# Small batches keep this fast; EMA and K=1 make sure their state is restored too.
SETTINGS = UnlearnSettings(steps=6, batch_size=8, forget_batch_size=8, ema_decay=0.9, inner_steps=1)


@pytest.fixture(scope="module")
def sets():
    train, _ = load_digits_split()
    return split_forget_retain(train, [4], 10)


def test_resume_matches_uninterrupted(digits_model, sets, tmp_path: Path) -> None:
    forget, retain = sets
    straight = unlearn_classes(digits_model, forget, retain, [4], SETTINGS, progress=False)

    seen: list[int] = []
    record = lambda m: seen.append(m.step)  # noqa: E731
    unlearn_classes(
        digits_model,
        forget,
        retain,
        [4],
        SETTINGS,
        tmp_path,
        checkpoint_every=3,
        callback=record,
        stop_after=3,
        progress=False,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000003"]
    resumed = unlearn_classes(
        digits_model, forget, retain, [4], SETTINGS, tmp_path, checkpoint_every=3, callback=record, progress=False
    )
    assert seen == [1, 2, 3, 4, 5, 6]  # the resumed run continued at step 4

    for (name, a), (_, b) in zip(straight.unet.state_dict().items(), resumed.unet.state_dict().items()):
        assert torch.equal(a, b), name
    changed = any(not torch.equal(a, b) for a, b in zip(straight.unet.parameters(), digits_model.unet.parameters()))
    assert changed  # and the run did change the model


def test_resume_refuses_a_checkpoint_from_another_config(digits_model, sets, tmp_path: Path) -> None:
    forget, retain = sets
    unlearn_classes(
        digits_model, forget, retain, [4], SETTINGS, tmp_path, checkpoint_every=2, stop_after=2, progress=False
    )
    other = SETTINGS.model_copy(update={"lr": 1e-3})
    with pytest.raises(ErasediffError, match="different unlearning config"):
        unlearn_classes(digits_model, forget, retain, [4], other, tmp_path, checkpoint_every=2, progress=False)


def test_metrics_carry_every_logged_quantity(digits_model, sets) -> None:
    forget, retain = sets
    rows: list[StepMetrics] = []
    unlearn_classes(
        digits_model,
        forget,
        retain,
        [4],
        SETTINGS.model_copy(update={"steps": 2}),
        callback=rows.append,
        progress=False,
    )
    keys = set(rows[-1].as_dict())
    assert {
        "retain_loss",
        "forget_loss",
        "lambda_t",
        "dot_rf",
        "cos_delta_retain",
        "cos_delta_forget",
        "q_hat",
        "grad_norm",
        "lr",
        "step",
    } <= keys
    assert all(r.q_hat is not None for r in rows)
