"""The evaluation an erasure request asks for: class-conditional pair, or text-to-image pair (concepts)."""

from pathlib import Path

from .erasure_checks import ConceptCheck, recheck_concept
from .evaluate import evaluate_pair
from .evaluate_prompts import evaluate_prompt_pair
from .request import ErasureRequest

EARLIER = "earlier"


def evaluate_request(req: ErasureRequest, base: Path, unlearned: Path, out: Path, progress: bool = True,
                     earlier_classes: list[int] | None = None, earlier_checks: list[ConceptCheck] = ()) -> dict:
    """results.json-shaped results (models.original/unlearned.metrics, protocol, delta), written under `out`.

    Earlier promoted erasures are re-measured on both models: their classes (`earlier_forgotten_accuracy`), and
    each earlier concept's recorded check (`results["earlier_checks"]`, detail under `out/earlier/REQUEST`)."""
    if req.target.kind == "class":
        results = evaluate_pair(base, unlearned, req.eval_config(earlier_classes), out, progress)
    else:
        results = evaluate_prompt_pair(base, unlearned, req.prompt_eval_config(), out, progress)
    results["earlier_checks"] = [row for check in earlier_checks
                                 for row in recheck_concept(check, base, unlearned, out / EARLIER / check.request_id, progress)]
    return results


def check_base_model(req: ErasureRequest, folder: Path) -> None:
    """A clear error now, not three steps later: the base must be the kind of model the target needs."""
    if req.target.kind == "class":
        from .model_io import load_class_model

        load_class_model(folder)
    else:
        from .text_model import check_pipeline_folder

        check_pipeline_folder(folder)
