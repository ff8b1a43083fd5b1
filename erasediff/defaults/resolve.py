"""Model specs in configs: a local folder path, or 'digits' / 'text-digits' for the embedded defaults."""

from pathlib import Path

from erasediff.defaults.digits_models import CLASSIFIER_DIR, MODEL_DIR, digits_default
from erasediff.models.class_model import ClassDiffusionModel, load_class_model
from erasediff.models.classifier import WEIGHTS, Classifier, load_classifier

DIGITS, TEXT_DIGITS = "digits", "text-digits"


def model_path(spec: str | Path) -> Path:
    if str(spec) == TEXT_DIGITS:
        from erasediff.defaults.text_digits import text_digits_default

        return text_digits_default()
    return digits_default()[2] / MODEL_DIR if str(spec) == DIGITS else Path(spec)


def resolve_model(spec: str | Path) -> ClassDiffusionModel:
    return load_class_model(model_path(spec))


def classifier_path(spec: str | Path) -> Path:
    return digits_default()[2] / CLASSIFIER_DIR if str(spec) == DIGITS else Path(spec)


def resolve_classifier(spec: str | Path) -> tuple[Classifier, Path]:
    """The classifier (digits CNN or any torchvision architecture) and its weight file (hashed into metric
    protocols)."""
    folder = classifier_path(spec)
    return load_classifier(folder), folder / WEIGHTS
