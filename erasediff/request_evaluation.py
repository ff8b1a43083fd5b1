"""The evaluation an erasure request asks for: class-conditional pair, or text-to-image pair (concepts)."""

from pathlib import Path

from .evaluate import evaluate_pair
from .evaluate_prompts import evaluate_prompt_pair
from .request import ErasureRequest


def evaluate_request(req: ErasureRequest, base: Path, unlearned: Path, out: Path, progress: bool = True,
                     earlier_classes: list[int] | None = None) -> dict:
    """results.json-shaped results (models.original/unlearned.metrics, protocol, delta), written under `out`;
    classes erased by earlier promoted requests are re-measured (`earlier_forgotten_accuracy`)."""
    if req.target.kind == "class":
        return evaluate_pair(base, unlearned, req.eval_config(earlier_classes), out, progress)
    return evaluate_prompt_pair(base, unlearned, req.prompt_eval_config(), out, progress)


def check_base_model(req: ErasureRequest, folder: Path) -> None:
    """A clear error now, not three steps later: the base must be the kind of model the target needs."""
    if req.target.kind == "class":
        from .model_io import load_class_model

        load_class_model(folder)
    else:
        from .text_model import check_pipeline_folder

        check_pipeline_folder(folder)
