"""Shared fixtures. Telemetry and hub access are off for every test (no network here)."""

import shutil
from pathlib import Path

import pytest

from erasediff.offline import go_offline

go_offline()

from erasediff.model_io import ClassDiffusionModel  # noqa: E402
from erasediff.train_base import CLASSIFIER_DIR, MODEL_DIR, digits_default  # noqa: E402


@pytest.fixture(scope="session")
def digits_folder() -> Path:
    """The packaged digits DDPM + evaluator folder (read-only: tests copy it before writing near it)."""
    return digits_default(progress=False)[2]


@pytest.fixture(scope="session")
def digits_model(digits_folder: Path) -> ClassDiffusionModel:
    from erasediff.model_io import load_class_model

    return load_class_model(digits_folder / MODEL_DIR)


@pytest.fixture(scope="session")
def digits_classifier(digits_folder: Path):
    from erasediff.classifier import ImageClassifier

    return ImageClassifier.from_pretrained(digits_folder / CLASSIFIER_DIR)


@pytest.fixture()
def model_copy(digits_folder: Path, tmp_path: Path) -> Path:
    """A private copy of the digits diffusers folder that a test may corrupt."""
    return Path(shutil.copytree(digits_folder / MODEL_DIR, tmp_path / "base"))
