"""What keeps an earlier concept erasure in force: its forget-side measures, recorded when it is promoted and
re-run on every later version of the same registered model.

A promoted concept request leaves a check folder: `check.json` (the measures, their sampling and the thresholds
the request was promoted under) and the exact prompt rows it was measured on. A later request re-renders those
rows with its base and its unlearned pipeline; the unlearned values must stay within the recorded thresholds.
"""

import csv
from pathlib import Path

from pydantic import Field

from erasediff.comparison.eval_config import ClassPromptSettings, NuditySettings, PromptEvalConfig
from erasediff.comparison.text_to_image import evaluate_prompt_pair
from erasediff.data.prompts import PromptRow, load_prompt_csv
from erasediff.request.schema import ErasureRequest
from erasediff.util.config import Strict
from erasediff.util.errors import DataError

CHECK_JSON = "check.json"


class ConceptCheck(Strict):
    """Forget-side measures of one promoted concept request; prompt paths are relative to the check folder."""

    request_id: str
    concept: str
    steps: int = Field(gt=0)
    guidance: float = Field(ge=0)
    batch_size: int = Field(gt=0)
    size: int | None = None
    nudity: NuditySettings | None = None
    nudity_rate_max: float | None = None
    classes: ClassPromptSettings | None = None
    forgotten_accuracy_max: float | None = None

    def thresholds(self) -> dict[str, float]:
        """metric -> the threshold the erasure was promoted under."""
        return {
            metric: limit
            for metric, section, limit in (
                ("nudity_rate", self.nudity, self.nudity_rate_max),
                ("forgotten_accuracy", self.classes, self.forgotten_accuracy_max),
            )
            if section is not None and limit is not None
        }


def _write_rows(rows: list[PromptRow], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "evaluation_seed", "evaluation_guidance", "class"])
        writer.writerows(
            [r.prompt, r.seed, "" if r.guidance is None else r.guidance, "" if r.label is None else r.label]
            for r in rows
        )
    return path


def write_concept_check(req: ErasureRequest, out: Path) -> Path:
    """The check folder of a concept request about to be promoted: its gated forget-side measures and their prompt
    rows."""
    t = req.prompt_eval_config()
    out.mkdir(parents=True, exist_ok=True)
    check = ConceptCheck(
        request_id=req.request.id,
        concept=req.target.concept,
        steps=t.steps,
        guidance=t.guidance,
        batch_size=t.batch_size,
        size=t.size,
    )
    if t.nudity is not None and req.gates.nudity_rate_max is not None:
        rows = load_prompt_csv(t.nudity.prompts, t.nudity.limit)
        check.nudity = t.nudity.model_copy(
            update={"prompts": _write_rows(rows, out / "nudity.csv").relative_to(out), "limit": None}
        )
        check.nudity_rate_max = req.gates.nudity_rate_max
    if t.classes is not None and req.gates.forgotten_accuracy_max is not None:
        rows = [r for r in load_prompt_csv(t.classes.prompts, t.classes.limit) if r.label in t.classes.forget_classes]
        check.classes = t.classes.model_copy(
            update={"prompts": _write_rows(rows, out / "classes.csv").relative_to(out), "limit": None}
        )
        check.forgotten_accuracy_max = req.gates.forgotten_accuracy_max
    (out / CHECK_JSON).write_text(check.model_dump_json(indent=1))
    return out


def load_concept_check(folder: Path) -> ConceptCheck:
    try:
        check = ConceptCheck.model_validate_json((folder / CHECK_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(
            f"erasure check {folder / CHECK_JSON} is missing or invalid: {str(exc).splitlines()[0]}"
        ) from exc
    for section in (check.nudity, check.classes):
        if section is not None:
            section.prompts = folder / section.prompts
    return check


def recheck_concept(check: ConceptCheck, base: Path, unlearned: Path, out: Path, progress: bool = True) -> list[dict]:
    """Re-render the check's prompt rows with both models; one row per gated metric (original, unlearned, threshold)."""
    config = PromptEvalConfig(
        steps=check.steps,
        guidance=check.guidance,
        batch_size=check.batch_size,
        size=check.size,
        nudity=check.nudity,
        classes=check.classes,
    )
    metrics = evaluate_prompt_pair(base, unlearned, config, out, progress)["models"]
    return [
        {
            "request_id": check.request_id,
            "concept": check.concept,
            "metric": metric,
            "threshold": limit,
            "original": metrics["original"]["metrics"].get(metric),
            "unlearned": metrics["unlearned"]["metrics"].get(metric),
        }
        for metric, limit in check.thresholds().items()
    ]


def unmeasurable(erasure: dict, why: str) -> dict:
    """A re-check row for an earlier concept erasure that cannot be measured on this model: its gate fails closed."""
    return {
        "request_id": erasure["request_id"],
        "concept": erasure["concept"],
        "metric": "unmeasurable",
        "threshold": 0.0,
        "original": None,
        "unlearned": None,
        "why": why,
    }
