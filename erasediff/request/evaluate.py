"""The evaluation stage of a request: the class-conditional or text-to-image pair side by side, plus the
re-check of every earlier erasure promoted into the same registered model.
"""

from pathlib import Path

from erasediff.comparison.class_models import evaluate_pair
from erasediff.comparison.text_to_image import evaluate_prompt_pair
from erasediff.request.earlier_checks import ConceptCheck, recheck_concept
from erasediff.request.schema import ErasureRequest

EARLIER = "earlier"


def evaluate_request(
    req: ErasureRequest,
    base: Path,
    unlearned: Path,
    out: Path,
    progress: bool = True,
    earlier_classes: list[int] | None = None,
    earlier_checks: list[ConceptCheck] = (),
) -> dict:
    """results.json-shaped results (models.original/unlearned.metrics, protocol, delta), written under `out`.

    Earlier promoted erasures are re-measured on both models: their classes (`earlier_forgotten_accuracy`), and
    each earlier concept's recorded check (`results["earlier_checks"]`, detail under `out/earlier/REQUEST`)."""
    if req.target.kind == "class":
        results = evaluate_pair(base, unlearned, req.eval_config(earlier_classes), out, progress)
    else:
        results = evaluate_prompt_pair(base, unlearned, req.prompt_eval_config(), out, progress)
    results["earlier_checks"] = [
        row
        for check in earlier_checks
        for row in recheck_concept(check, base, unlearned, out / EARLIER / check.request_id, progress)
    ]
    return results
