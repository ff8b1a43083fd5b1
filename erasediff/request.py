"""An erasure request: the single input of the pipeline, validated field by field.

Who asked, why, what to forget, from which base model and data, how to unlearn, how to evaluate,
which thresholds gate promotion, and where the result is registered.
"""

from pathlib import Path

from pydantic import Field, model_validator

from .config import EvalSettings, Strict, UnlearnSettings, load_yaml_config
from .eval_config import ClassEvalConfig, FidSettings

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class RequestInfo(Strict):
    id: str = Field(pattern=ID_PATTERN, description="unique per erasure request; a promoted id is never promoted twice")
    requester: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    legal_basis: str | None = None


class Target(Strict):
    classes: list[int] = Field(min_length=1, description="class indices to forget")

    @model_validator(mode="after")
    def _distinct(self) -> "Target":
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes lists a class twice: {self.classes}")
        return self


class DataSources(Strict):
    """'digits' (the embedded default's training split) or a local folder holding labels.csv (file,label) and the images."""

    forget: str = "digits"
    retain: str = "digits"


class CurationSettings(Strict):
    min_forget: int = Field(10, gt=0, description="fewest forget images accepted")
    min_retain: int = Field(100, gt=0, description="fewest retain images accepted")
    max_duplicate_fraction: float = Field(0.05, ge=0, lt=1, description="largest share of repeated images within one set")


class RequestEvaluation(Strict):
    generation: EvalSettings = EvalSettings()
    fid: FidSettings = FidSettings()
    grid_per_class: int = Field(8, gt=0)


class GateSettings(Strict):
    """Promotion thresholds; a gate set to null is not checked, a checked gate with no metric fails."""

    forgotten_accuracy_max: float | None = Field(0.2, ge=0, le=1, description="evaluator accuracy on forgotten-class samples")
    retained_accuracy_drop_max: float | None = Field(0.05, ge=0, le=1, description="original minus unlearned, retained classes")
    fid_increase_max: float | None = Field(0.25, ge=0, description="relative FID increase: unlearned / original - 1")
    nudity_rate_max: float | None = Field(None, ge=0, le=1, description="share of images with an exposed NudeNet detection")
    clip_score_drop_max: float | None = Field(None, ge=0, description="original minus unlearned CLIP score")

    @model_validator(mode="after")
    def _at_least_one(self) -> "GateSettings":
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("every gate is null: a model that nothing checked is never promoted")
        return self


class RegistrySettings(Strict):
    model_name: str = Field("erasediff-digits", min_length=1, description="MLflow registered model name")
    alias: str = Field("champion", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="alias moved to the promoted version")


class TrackingSettings(Strict):
    uri: str | None = Field(None, description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else SQLite in the work folder")
    experiment: str = "erasediff"


class ErasureRequest(Strict):
    request: RequestInfo
    target: Target
    base_model: str = Field("digits", description="local diffusers folder, 'digits', or models:/name@alias")
    classifier: str = Field("digits", description="evaluator: local classifier folder, or 'digits'")
    data: DataSources = DataSources()
    curation: CurationSettings = CurationSettings()
    unlearning: UnlearnSettings = UnlearnSettings()
    checkpoint_every: int = Field(25, ge=0, description="steps between resumable checkpoints (0 = none)")
    evaluation: RequestEvaluation = RequestEvaluation()
    gates: GateSettings = GateSettings()
    registry: RegistrySettings = RegistrySettings()
    tracking: TrackingSettings = TrackingSettings()

    def eval_config(self) -> ClassEvalConfig:
        e = self.evaluation
        return ClassEvalConfig(forget_classes=self.target.classes, classifier=self.classifier, generation=e.generation,
                               fid=e.fid, grid_per_class=e.grid_per_class)

    def as_params(self) -> dict:
        """Plain JSON-able form that round-trips through `ErasureRequest.model_validate` (pipeline parameters)."""
        return self.model_dump(mode="json", by_alias=True)


def load_request(path: str | Path) -> ErasureRequest:
    return load_yaml_config(path, ErasureRequest)
