"""How evaluation samples are drawn (sampler, guidance convention, seeds) and which features FID/KID use."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from erasediff.models.sampling import Sampler
from erasediff.util.config import Strict


class EvalSettings(Strict):
    """Class-conditional sampling, guidance in diffusers' form eps_null + w (eps_c - eps_null) (training-time quality
    checks)."""

    samples_per_class: int = Field(50, gt=0)
    guidance: float = Field(2.0, ge=0)
    sampler: Sampler = "ddim"
    steps: int = Field(50, gt=0)
    seed: int = 1234
    batch_size: int = Field(250, gt=0)

    def diffusers_scale(self) -> float:
        """The scale w of eps_null + w (eps_c - eps_null) that the sampler applies."""
        return self.guidance


GUIDANCE_CONVENTIONS = {
    "reference": "(1 + w) eps_c - w eps_null (the EraseDiff reference DDPM code; w = 2 is diffusers scale 3)",
    "diffusers": "eps_null + w (eps_c - eps_null) (diffusers' guidance_scale)",
}


class GenerationSettings(EvalSettings):
    """Evaluation sampling: 100 samples a class (a Wilson upper bound of 3.7 % when none of the forgotten class is
    recognised) and the reference code's guidance convention by default, for numbers comparable with published ones."""

    samples_per_class: int = Field(100, gt=0)
    guidance_convention: Literal["reference", "diffusers"] = Field(
        "reference", description=" | ".join(f"{k}: {v}" for k, v in GUIDANCE_CONVENTIONS.items())
    )

    def diffusers_scale(self) -> float:
        return self.guidance + 1 if self.guidance_convention == "reference" else self.guidance

    def protocol(self) -> dict:
        """What every class-sampling protocol record says about how the samples were drawn."""
        return {
            "sampler": self.sampler,
            "steps": self.steps,
            "guidance": self.guidance,
            "guidance_convention": GUIDANCE_CONVENTIONS[self.guidance_convention],
            "guidance_scale_diffusers": self.diffusers_scale(),
            "seed": self.seed,
            "samples_per_class": self.samples_per_class,
        }


class FidSettings(Strict):
    features: Literal["classifier", "inception", "clip"] = Field(
        "classifier",
        description="classifier = the evaluator's penultimate features (metric fid_classifier, not Inception FID)",
    )
    inception_weights: Path | None = Field(
        None, description="clean-fid's inception-2015-12-05.pt; else $ERASEDIFF_INCEPTION_WEIGHTS"
    )
    clip_model: Path | None = Field(None, description="local transformers CLIP folder, for features: clip")
    min_reference: int = Field(100, gt=1, description="refuse a reference set smaller than this")
    cache_dir: Path | None = Field(
        None, description="reference statistics cache (default: <erasediff cache>/fid_stats)"
    )
