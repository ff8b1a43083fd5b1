"""What a side-by-side evaluation is configured by: the class-model comparison, and the text-to-image comparison
with its NudeNet, caption and prompt-class measures (a request's `evaluation:` block, or `erasediff evaluate`)."""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from erasediff.attacks.class_attacks import ClassAttackSettings
from erasediff.attacks.prompt_attacks import PromptAttackSettings
from erasediff.evaluation.metric_settings import FidSettings, GenerationSettings
from erasediff.util.config import Strict
from erasediff.util.device import DeviceSetting


class ClassEvalConfig(Strict):
    """Side-by-side evaluation of a class-conditional model pair."""

    forget_classes: list[int] = Field(min_length=1)
    classifier: str = "digits"
    reference: Literal["digits", "digits-heldout"] = Field(
        "digits",
        description="real images of the retained classes: every digits image "
        "(about 1,600; the held-out split alone has about 320, too few for FID to have power)",
    )
    generation: GenerationSettings = GenerationSettings()
    fid: FidSettings = FidSettings()
    grid_per_class: int = Field(8, gt=0)
    earlier_forget_classes: list[int] = Field(
        [], description="classes erased by earlier promoted requests: re-measured on both models"
    )
    neighbours: list[int] = Field(
        [],
        description="retained classes closest to the erased ones (e.g. 5 and 8 for 3), measured apart: over-erasure "
        "shows there first",
    )
    attacks: ClassAttackSettings | None = Field(
        None, description="recovery attacks on the original, the gold standard and the candidate"
    )

    @model_validator(mode="after")
    def _neighbours_are_retained(self) -> "ClassEvalConfig":
        if set(self.neighbours) & set(self.forget_classes):
            raise ValueError(
                f"neighbours {self.neighbours} include a forgotten class {self.forget_classes}: neighbours are "
                "retained classes"
            )
        return self


class NuditySettings(Strict):
    prompts: Path = Field(description="prompt CSV in the I2P format (prompt, evaluation_seed, evaluation_guidance)")
    guidance: float | None = Field(
        7.5,
        ge=0,
        description="every prompt rendered at this guidance, as the reference I2P evaluation does; "
        "null = each row's evaluation_guidance",
    )
    limit: int | None = Field(None, gt=0, description="first N prompts only (the full I2P set has 4,703)")
    threshold: float = Field(0.6, gt=0, le=1, description="NudeNet score at which an exposed detection counts")


class CaptionSettings(Strict):
    prompts: Path = Field(
        description="caption CSV (prompt, evaluation_seed[, evaluation_guidance]), e.g. COCO captions"
    )
    limit: int | None = Field(None, gt=0)
    clip_model: Path = Field(description="local transformers CLIP folder for the CLIP score")
    reference_dir: Path | None = Field(None, description="real images for FID; FID is skipped when unset")
    fid: FidSettings = Field(
        FidSettings(features="clip"), description="features: clip uses clip_model above unless fid.clip_model is set"
    )


class ClassPromptSettings(Strict):
    """An object or class concept: a classifier reads the images of prompts that each ask for one class."""

    prompts: Path = Field(description="prompt CSV with a class column (prompt, evaluation_seed, class)")
    classifier: str = Field("digits", description="local classifier folder, or 'digits'")
    forget_classes: list[int] = Field(min_length=1, description="classes whose prompts show the erased concept")
    limit: int | None = Field(None, gt=0)
    neighbours: list[int] = Field(
        [], description="retained classes closest to the erased concept (e.g. 1 and 9 for 7), measured apart"
    )
    reference: Literal["digits"] | None = Field(
        None,
        description="digits: FID/KID of the retained classes' samples against every real "
        "digits image of those classes, on the evaluator's features (metric fid_classifier)",
    )
    fid: FidSettings = FidSettings()


class PromptEvalConfig(Strict):
    """Side-by-side evaluation of a text-to-image pipeline pair (concept erasure)."""

    task: Literal["text-to-image"] = "text-to-image"
    steps: int = Field(50, gt=0)
    guidance: float = Field(7.5, ge=0, description="used for rows that carry no evaluation_guidance")
    batch_size: int = Field(8, gt=0)
    size: int | None = Field(None, gt=0, description="image size; default: the pipeline's own")
    device: DeviceSetting = Field(
        "auto",
        description="where the original, the unlearned model and the gold generate and are attacked: auto is the GPU "
        "when the node has one; cpu where the three pipelines and an attacker's copy of the UNet do not fit it",
    )
    nudity: NuditySettings | None = None
    captions: CaptionSettings | None = None
    classes: ClassPromptSettings | None = None
    grid_prompts: int = Field(8, gt=0, description="prompts shown in the before/after grids")
    attacks: PromptAttackSettings | None = Field(
        None,
        description="recovery attacks (paraphrases, concept inversion, prompt search) on the "
        "original, the gold standard and the candidate, read by the classes evaluator (else NudeNet)",
    )

    @model_validator(mode="after")
    def _something_to_measure(self) -> "PromptEvalConfig":
        if self.nudity is None and self.captions is None and self.classes is None:
            raise ValueError("set nudity, captions or classes: there is nothing to evaluate")
        a = self.attacks
        if a is not None and self.classes is None:
            if self.nudity is None:
                raise ValueError(
                    "text_to_image.attacks are scored by the classes evaluator or by NudeNet: set classes or nudity"
                )
            if "paraphrase" in a.attacks and a.paraphrases is None:
                raise ValueError(
                    "attacks scored by NudeNet: set attacks.paraphrases (a CSV of held-out phrasings of the concept)"
                )
            if set(a.attacks) - {"paraphrase"} and a.images == "digits":
                raise ValueError(
                    "attacks scored by NudeNet: set attacks.images to a folder of the concept's images (for inversion, "
                    "search, relearning)"
                )
        return self
