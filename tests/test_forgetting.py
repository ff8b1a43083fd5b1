"""Acceptance: EraseDiff forgets a digit class and keeps the others (issue 2, "what it must show" 1)."""

import pytest

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import split_forget_retain
from erasediff.evaluation.class_accuracy import class_scores, mean_accuracy
from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.unlearning_settings import UnlearnSettings

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

EVAL = EvalSettings(samples_per_class=30, steps=20)  # same seeds for base and unlearned models
SETTINGS = UnlearnSettings(steps=80)  # adaptive lambda, eta 0.1, remap, lr 1e-4, 64 + 64 per step


@pytest.fixture(scope="module")
def base_scores(digits_model, digits_classifier):
    return class_scores(digits_model, digits_classifier, EVAL, progress=False)


@pytest.mark.parametrize("forgotten", [[3], [6], [2, 7]], ids=["class-3", "class-6", "classes-2-and-7"])
def test_forgets_and_preserves(digits_model, digits_classifier, base_scores, forgotten: list[int]) -> None:
    train, _ = load_digits_split()
    forget, retain = split_forget_retain(train, forgotten, digits_model.num_classes)
    result = unlearn_classes(digits_model, forget, retain, forgotten, SETTINGS, progress=False)
    after = class_scores(result, digits_classifier, EVAL, progress=False)
    retained = [c for c in range(10) if c not in forgotten]

    assert mean_accuracy(base_scores, forgotten) >= 0.9  # the base model did draw these classes
    for c in forgotten:
        assert after[c].accuracy <= 0.15, f"class {c} still drawn {after[c].accuracy:.0%} of the time"
    drop = mean_accuracy(base_scores, retained) - mean_accuracy(after, retained)
    assert drop <= 0.10, f"retained accuracy fell by {drop:.1%}"
