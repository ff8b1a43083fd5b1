"""Named attack budgets: `evaluation.attacks.budget: standard | thorough` picks how much each attacker may spend.

`standard` is what the gates were calibrated at on the embedded models (2 CPU cores, under a minute an attack);
`thorough` gives every attacker more images, steps and candidates, for a review before a high-stakes promotion.
A setting written next to the budget overrides it (`budget: thorough` with `k: 8` keeps 8 images).
"""

from typing import Any, ClassVar, Literal

from pydantic import model_validator

from erasediff.util.config import Strict

Budget = Literal["standard", "thorough"]


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
