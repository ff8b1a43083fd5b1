"""Step: resolve the request's base model (local folder, 'digits'/'text-digits', or models:/name@alias) into a versioned artifact."""

from pathlib import Path
from typing import Annotated

from zenml import step

from erasediff.hashing import folder_hash
from erasediff.request import ErasureRequest
from erasediff.request_evaluation import check_base_model
from erasediff.resolve import model_path
from steps.registry import MODELS_SCHEME, registered_model_folder


@step
def load_base_model(request: dict) -> tuple[Annotated[Path, "base_model"], Annotated[str, "base_model_sha256"]]:
    req = ErasureRequest.model_validate(request)
    spec = req.base_model
    folder = registered_model_folder(spec) if spec.startswith(MODELS_SCHEME) else model_path(spec)
    check_base_model(req, folder)
    return folder, folder_hash(folder)
