"""The retain-probe guard-rail: when it stops, what it restores, and the held-out loss probe on the digits model."""

import pytest
import torch

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import split_forget_retain
from erasediff.method.loop import split_held_out
from erasediff.method.losses import class_condition
from erasediff.method.runtime.probe import ProbeReading, RetainGuard, loss_probe
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.unlearning_settings import ProbeSettings, UnlearnSettings
from erasediff.util.errors import DataError


def scripted(readings: list[tuple[float, bool]]):
    """A probe that returns the given (degradation, forgotten) readings in order."""
    queue = iter(readings)
    return lambda unet: ProbeReading(*next(queue), {})


def run_guard(action: str, readings: list[tuple[float, bool]]) -> tuple[list[dict], torch.Tensor, list[float]]:
    """Drive a guard over one parameter whose value is the step number; returns readings, final value and stop flags."""
    weight = torch.nn.Parameter(torch.zeros(1))
    guard = RetainGuard(scripted(readings), ProbeSettings(every=1, action=action, max_degradation=0.05), {"w": weight})
    logged, stops = [], []
    for step in range(1, len(readings) + 1):
        with torch.no_grad():
            weight.fill_(step)
        values, stop = guard.check(None, step)
        logged.append(values)
        stops.append(stop)
        if stop:
            break
    return logged, weight.detach().clone(), stops


SERIES = [(0.01, False), (0.02, True), (0.01, True), (0.20, False), (0.30, True), (0.40, True)]


def test_guard_ignores_degradation_until_forgetting_is_achieved_then_stops() -> None:
    logged, weight, stops = run_guard("stop", SERIES)
    assert stops == [False, False, False, False, True]  # step 4 is degraded but has not forgotten yet
    assert logged[-1]["probe_stopped"] == 1.0 and "probe_restored_step" not in logged[-1]
    assert weight.item() == 5  # stop keeps the weights it probed


def test_guard_restores_the_best_forgetting_weights() -> None:
    logged, weight, _ = run_guard("restore_best", SERIES)
    assert logged[-1]["probe_restored_step"] == 3.0  # least degraded among the readings that had forgotten
    assert weight.item() == 3


def test_guard_stops_at_the_first_forgotten_reading_when_asked_whatever_the_degradation() -> None:
    logged, weight, stops = run_guard("stop_when_forgotten", SERIES)
    assert (
        stops == [False, True] and logged[-1]["probe_stopped"] == 1.0
    )  # step 2: forgotten, degradation 0.02 under the bound
    assert weight.item() == 2


def test_guard_in_log_mode_never_stops() -> None:
    logged, _, stops = run_guard("log", SERIES)
    assert not any(stops) and len(logged) == len(SERIES)
    assert [v["probe_forgotten"] for v in logged] == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]


@pytest.fixture(scope="module")
def digits_sets(digits_model):
    train, _ = load_digits_split(digits_model.unet.config.sample_size)
    return split_forget_retain(train, [3], digits_model.num_classes)


def test_loss_probe_reads_the_base_model_as_intact(digits_model, digits_sets) -> None:
    forget, retain = digits_sets
    _, held_out = split_held_out(retain, 64, 0)
    substitutes = torch.tensor([c for c in range(10) if c != 3])
    probe = loss_probe(
        digits_model.unet,
        digits_model.scheduler,
        class_condition,
        held_out,
        forget,
        substitutes,
        ProbeSettings(every=1),
        0,
    )
    reading = probe(digits_model.unet)
    assert reading.degradation == 0.0 and not reading.forgotten
    assert reading.values["forget_advantage"] > 0  # class 3's label helps denoise its images


def test_held_out_items_are_never_trained_on(digits_sets) -> None:
    _, retain = digits_sets
    trained, held_out = split_held_out(retain, 64, 0)
    assert len(held_out) == 64 and len(trained) == len(retain) - 64
    seen = {tuple(x.flatten().tolist()) for x in trained.images}
    assert not any(tuple(x.flatten().tolist()) in seen for x in held_out.images)
    with pytest.raises(DataError, match="leaves nothing"):
        split_held_out(retain, len(retain), 0)


def test_guard_stops_neggrad_once_it_forgets_and_wrecks_the_retain_loss(digits_model, digits_sets) -> None:
    """NegGrad's ascent degrades everything: the held-out probe must end the run well before the budget."""
    forget, retain = digits_sets
    settings = UnlearnSettings(
        method="neggrad",
        steps=60,
        batch_size=32,
        forget_batch_size=32,
        lr=1e-4,
        probe={"every": 5, "action": "stop", "max_degradation": 0.05},
    )
    rows = []
    unlearn_classes(digits_model, forget, retain, [3], settings, callback=rows.append, progress=False)
    probed = [r.probe for r in rows if r.probe]
    assert rows[-1].step < 60 and rows[-1].probe["probe_stopped"] == 1.0
    assert rows[-1].probe["probe_forgotten"] == 1.0 and rows[-1].probe["probe_degradation"] > 0.05
    assert [r.step for r in rows if r.probe] == list(range(5, rows[-1].step + 1, 5))
    assert all("probe_heldout_retain_loss" in p for p in probed)
