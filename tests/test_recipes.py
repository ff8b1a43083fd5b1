"""Named recipes and attack budgets: what a request's `unlearning.recipe` and `evaluation.attacks.budget` expand to."""

from pathlib import Path

import pytest
import yaml

from erasediff.attacks.class_attacks import ClassAttackSettings
from erasediff.attacks.prompt_attacks import PromptAttackSettings
from erasediff.method.recipes import RECIPES, effective_settings
from erasediff.method.unlearning_settings import PAPER_PLAIN, UnlearnSettings
from erasediff.request.schema import ErasureRequest, load_request

CONFIGS = Path(__file__).parents[1] / "configs"

# The `unlearning:` blocks the two embedded requests shipped before recipes existed (commit dc9fd61), written out by
# hand:
# `recipe: robust` must expand to exactly these settings, so that a request behaves as it did.
SHIPPED_DIGITS = {
    "method": "erasediff",
    "forget_loss": "remap",
    "lambda": {"mode": "adaptive", "eta": 0.1},
    "steps": 100,
    "batch_size": 64,
    "forget_batch_size": 64,
    "lr": 1.0e-4,
    "grad_clip": 1.0,
    "params": {"preset": "full"},
    "seed": 0,
    "processes": 1,
    "relearn": {"steps": 5, "lr": 6.0e-4, "weight": 12.0, "batch": 16},
    "forget_on_retain": 0.5,
    "retain_anchor": 3.0,
    "forget_row": "null",
}
SHIPPED_TEXT = {
    "steps": 150,
    "lr": 3.0e-4,
    "batch_size": 32,
    "forget_batch_size": 32,
    "params": {"preset": "noxattn"},
    "relearn": {"steps": 5, "lr": 6.0e-4, "weight": 3.0, "batch": 16},
}


def _without_recipe(settings: UnlearnSettings) -> dict:
    return settings.model_dump(exclude={"recipe"})


@pytest.mark.parametrize(
    ("config", "shipped"),
    [("request_digits_forget_3.yaml", SHIPPED_DIGITS), ("request_text_digits_forget_seven.yaml", SHIPPED_TEXT)],
)
def test_robust_recipe_records_the_settings_the_requests_shipped(config: str, shipped: dict) -> None:
    request = load_request(CONFIGS / config)
    assert request.unlearning.recipe == "robust"
    assert _without_recipe(request.unlearning) == _without_recipe(UnlearnSettings.model_validate(shipped))


def test_paper_recipe_is_the_robust_one_with_every_addition_off() -> None:
    for kind in ("class", "concept"):
        robust = effective_settings("robust", kind).model_dump(by_alias=True, exclude={"recipe"})
        assert _without_recipe(effective_settings("paper", kind)) == _without_recipe(
            UnlearnSettings.model_validate({**robust, **PAPER_PLAIN})
        )


def test_each_baseline_recipe_runs_its_method_as_published() -> None:
    for name in ("finetune", "neggrad", "salun", "esd"):
        settings = effective_settings(name, "class")
        assert (
            settings.method == name
            and settings.relearn is None
            and settings.retain_anchor == 0
            and settings.forget_row == "keep"
        )
    assert set(RECIPES) == {"robust", "paper", "finetune", "neggrad", "salun", "esd"}


def test_advanced_overrides_merge_key_by_key() -> None:
    settings = effective_settings("robust", "class", {"relearn": {"lr": 1e-3}, "steps": 7}, seed=4)
    assert (settings.relearn.lr, settings.relearn.steps, settings.relearn.weight, settings.steps, settings.seed) == (
        1e-3,
        5,
        12.0,
        7,
        4,
    )
    assert effective_settings("robust", "class", {"relearn": None}).relearn is None


def test_a_request_dumps_as_written_and_validates_back_equal() -> None:
    request = load_request(CONFIGS / "request_digits_forget_3.yaml")
    written = request.as_params()["unlearning"]
    assert set(written) == {"recipe", "seed", "processes", "advanced"} and written["recipe"] == "robust"
    assert ErasureRequest.model_validate(request.as_params()) == request


def test_the_shipped_digits_request_is_short() -> None:
    lines = [
        line
        for line in (CONFIGS / "request_digits_forget_3.yaml").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert len(lines) <= 40


def test_a_budget_fills_what_is_not_written_and_a_written_setting_wins() -> None:
    standard, thorough = ClassAttackSettings(), ClassAttackSettings(budget="thorough")
    assert set(standard.k) < set(thorough.k) and max(thorough.relearn_steps) > max(standard.relearn_steps)
    assert ClassAttackSettings(budget="thorough", k=8).k == [8]  # one number is a grid of one point
    assert ClassAttackSettings.model_validate({"budget": "thorough"}).model_dump() == thorough.model_dump()
    text, text_thorough = PromptAttackSettings(), PromptAttackSettings(budget="thorough")
    assert set(text.search_candidates) < set(text_thorough.search_candidates) and len(text.inversion_steps) > 1
    assert PromptAttackSettings(inversion_steps=1000).inversion_steps == [1000]  # the SD requests' single numbers
    dumped = yaml.safe_load(yaml.safe_dump(thorough.model_dump(mode="json")))
    assert ClassAttackSettings.model_validate(dumped) == thorough
