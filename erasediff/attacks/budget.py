"""Named attack budgets: `evaluation.attacks.budget: standard | thorough` picks how much each attacker may spend.

A budget is a grid: on class models images held x relearning steps x learning rate x guidance, and inversion steps;
on text-to-image models inversion steps, relearning steps x learning rate, prompt-search steps x candidates, and the
number of paraphrases. The attack gates read its worst point: `standard` is what every request is gated on,
`thorough` a wider grid for a review before a high-stakes promotion. A setting written next to the budget overrides
that axis (`budget: thorough` with `k: 8` keeps 8 images only).
"""

from typing import Any, ClassVar, Literal

from pydantic import model_validator

from erasediff.util.config import Strict

Budget = Literal["standard", "thorough"]


def grid(value: Any) -> Any:
    """One number is a grid of one point; a grid is read in increasing order, each point once (a field validator)."""
    return sorted(set(value)) if isinstance(value, list) else [value]


class Budgeted(Strict):
    """Settings whose unset fields come from the named budget's table (`BUDGETS`, set by each subclass)."""

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _fill_from_budget(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        budget = data.get("budget", "standard")
        if budget not in cls.BUDGETS:
            return data  # the budget field's own validation names the allowed values
        return {**cls.BUDGETS[budget], **data}
