"""The base-model stage of a request: the model must be the kind its target needs, said before any compute."""

from pathlib import Path

from erasediff.request.schema import ErasureRequest


def check_base_model(req: ErasureRequest, folder: Path) -> None:
    """A clear error now, not three steps later: the base must be the kind of model the target needs."""
    if req.target.kind == "class":
        from erasediff.models.class_model import load_class_model

        load_class_model(folder)
    else:
        from erasediff.models.text_pipeline import check_pipeline_folder

        check_pipeline_folder(folder)
