"""Named recipes: what a request's `unlearning.recipe` expands to, per target kind.

A user picks a recipe by name instead of setting a dozen research knobs; `unlearning.advanced` overrides any
setting a recipe chooses (nested blocks merge key by key), and the result is validated once as `UnlearnSettings`.

    robust    EraseDiff with this project's additions against recovery attacks (docs/method.md): the recommended
              erasure. Class models: the relearning term, retain rows under the forgotten label, the anchored retain
              loss and the forgotten label's row set to the null row. Text-to-image: the relearning term.
    paper     EraseDiff as published (arXiv 2401.05779): the remap forget loss, the adaptive lambda, nothing added.
    finetune, neggrad, salun, esd
              the baselines EraseDiff is compared with, each as published.
"""

from typing import Any, Literal

from erasediff.method.unlearning_settings import Recipe, UnlearnSettings

Kind = Literal["class", "concept"]

PAPER = {"method": "erasediff", "forget_loss": "remap", "lambda": {"mode": "adaptive", "eta": 0.1}}

# The relearning term's simulated attacker: 5 signed steps of 6e-4 cover about the ground of 30 Adam steps at 1e-4.
# Class models weigh it 12 (the anchor below pulls back towards the original; 6 held at 8 images and 30 steps but not
# at 16 images, docs/experiments.md); text-to-image, without the anchor, 3.
RELEARN = {"steps": 5, "lr": 6e-4, "batch": 16}

RECIPES: dict[Recipe, dict[str, dict[str, Any]]] = {
    "robust": {
        "class": {
            **PAPER,
            "relearn": {**RELEARN, "weight": 12.0},  # 6 held one budget point; 12 holds the standard grid (issue 39)
            "forget_on_retain": 0.5,
            "retain_anchor": 3.0,
            "forget_row": "null",
        },
        "concept": {**PAPER, "relearn": {**RELEARN, "weight": 3.0}},
    },
    "paper": {"class": PAPER, "concept": PAPER},
    **{
        name: {"class": {"method": name}, "concept": {"method": name}}
        for name in ("finetune", "neggrad", "salun", "esd")
    },
}


def merge(base: dict, update: dict) -> dict:
    """`update` over `base`, nested mappings key by key (an override of relearn.lr keeps the recipe's relearn.steps)."""
    out = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out


def recipe_settings(recipe: Recipe, kind: Kind, advanced: dict | None = None, **top: Any) -> dict:
    """The settings a recipe chooses for a target kind, with `advanced` and the top-level keys (seed, processes) over
    it,
    as a plain mapping for `UnlearnSettings.model_validate` (which still refuses an unknown key, naming it)."""
    return merge(merge(RECIPES[recipe][kind], advanced or {}), {**top, "recipe": recipe})


def effective_settings(recipe: Recipe, kind: Kind, advanced: dict | None = None, **top: Any) -> UnlearnSettings:
    return UnlearnSettings.model_validate(recipe_settings(recipe, kind, advanced, **top))
