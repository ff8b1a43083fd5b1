"""Step: resolve the request's base model (local folder, 'digits', or models:/name@alias) into a versioned artifact."""

from pathlib import Path
from typing import Annotated

from zenml import step

from erasediff.hashing import folder_hash
from erasediff.model_io import load_class_model
from erasediff.resolve import model_path
from steps.registry import MODELS_SCHEME, registered_model_folder


@step
def load_base_model(base_model: str) -> tuple[Annotated[Path, "base_model"], Annotated[str, "base_model_sha256"]]:
    folder = registered_model_folder(base_model) if base_model.startswith(MODELS_SCHEME) else model_path(base_model)
    load_class_model(folder)  # a clear error now, not three steps later
    return folder, folder_hash(folder)
