"""`erasediff evaluate` config: what to generate, which features FID uses, and the reference set."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from .config import EvalSettings, Strict


class FidSettings(Strict):
    features: Literal["classifier", "inception", "clip"] = Field(
        "classifier", description="classifier = the evaluator's penultimate features (metric fid_classifier, not Inception FID)"
    )
    inception_weights: Path | None = Field(None, description="clean-fid's inception-2015-12-05.pt; else $ERASEDIFF_INCEPTION_WEIGHTS")
    clip_model: Path | None = Field(None, description="local transformers CLIP folder, for features: clip")
    min_reference: int = Field(100, gt=1, description="refuse a reference set smaller than this")
    cache_dir: Path | None = Field(None, description="reference statistics cache (default: <erasediff cache>/fid_stats)")


class ClassEvalConfig(Strict):
    """Side-by-side evaluation of a class-conditional model pair."""

    forget_classes: list[int] = Field(min_length=1)
    classifier: str = "digits"
    reference: Literal["digits-heldout"] = Field("digits-heldout", description="real images of the retained classes")
    generation: EvalSettings = EvalSettings()
    fid: FidSettings = FidSettings()
    grid_per_class: int = Field(8, gt=0)
