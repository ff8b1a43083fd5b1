"""Run configs, validated with pydantic: unknown keys and bad values are errors that name the field."""

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ErasediffError
from .losses import ForgetLoss
from .params import Preset
from .sampling import Sampler


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LambdaSettings(Strict):
    mode: Literal["adaptive", "constant"] = "adaptive"
    eta: float = Field(0.1, ge=0, description="adaptive mode: required decrease of L_f as a multiple of ||g_f||^2")
    value: float = Field(0.1, ge=0, description="constant mode: lambda_t")


class ParamSettings(Strict):
    preset: Preset = "full"
    include: list[str] = []
    exclude: list[str] = []


Method = Literal["erasediff", "finetune", "neggrad", "salun", "esd"]


class NegGradSettings(Strict):
    alpha: float = Field(1.0, gt=0, description="weight of the ascent on the forget-set diffusion loss")


class SalunSettings(Strict):
    mask_fraction: float = Field(0.5, gt=0, le=1, description="share of weights SalUn may change (top |grad| of the forget loss)")
    alpha: float = Field(1.0, ge=0, description="weight of the retain loss next to the remap forget loss")


class EsdSettings(Strict):
    negative_guidance: float = Field(1.0, gt=0, description="eta of ESD's target eps_null - eta (eps_c - eps_null)")
    start_guidance: float = Field(3.0, ge=0, description="guidance when sampling x_t from the current model")
    sampling_steps: int = Field(20, gt=1, description="DDIM steps of the schedule x_t is sampled on")


class ProbeSettings(Strict):
    """The retain-probe guard-rail: every `every` steps, measure the loss on held-out retain images and
    whether forgetting is achieved; once it is, stop (or restore the best probed weights) if the held-out
    loss has risen more than `max_degradation` above the base model's."""

    every: int = Field(0, ge=0, description="steps between probes; 0 = no probe")
    action: Literal["log", "stop", "restore_best"] = "stop"
    max_degradation: float = Field(0.05, ge=0, description="largest relative rise of the held-out retain loss over the base model's")
    held_out: int = Field(64, gt=0, description="retain items set aside for the probe and never trained on")
    forget_fraction: float = Field(0.1, ge=0, le=1, description="forgotten once the forget images' conditional advantage "
                                   "(loss under a substitute minus loss under the forgotten condition) is below this share of the base model's")


class UnlearnSettings(Strict):
    """Everything that changes the unlearned weights (hashed to guard checkpoint resumption)."""

    method: Method = Field("erasediff", description="erasediff, or a baseline to compare with (finetune, neggrad, salun, esd)")
    forget_loss: ForgetLoss = "remap"
    lambda_: LambdaSettings = Field(default_factory=LambdaSettings, alias="lambda")
    inner_steps: int = Field(0, ge=0, description="K: inner steps estimating min_phi L_f (logging only)")
    inner_lr: float | None = Field(None, gt=0)
    steps: int = Field(100, gt=0)
    batch_size: int = Field(64, gt=0, description="retain images per step")
    forget_batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-4, gt=0)
    grad_clip: float | None = Field(1.0, gt=0)
    ema_decay: float | None = Field(None, gt=0, lt=1)
    params: ParamSettings = Field(default_factory=ParamSettings)
    seed: int = 0
    processes: int = Field(1, ge=1, description="data-parallel processes on one node (one per GPU) under accelerate; "
                           "batch sizes are per process, so the effective batch grows with this")
    mixed_precision: Literal["no", "bf16"] = "no"
    gradient_checkpointing: bool = Field(False, description="recompute UNet activations in backward: less memory, about 30% more time")
    optimizer: Literal["adam", "adam8bit"] = Field("adam", description="adam8bit needs bitsandbytes (GPU nodes)")
    neggrad: NegGradSettings = Field(default_factory=NegGradSettings)
    salun: SalunSettings = Field(default_factory=SalunSettings)
    esd: EsdSettings = Field(default_factory=EsdSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)

    @property
    def uses_substitutes(self) -> bool:
        """Whether the method aims forgotten conditions at substitutes (classes or anchor prompts)."""
        return (self.method == "erasediff" and self.forget_loss == "remap") or self.method == "salun"


class EvalSettings(Strict):
    samples_per_class: int = Field(50, gt=0)
    guidance: float = Field(2.0, ge=0)
    sampler: Sampler = "ddim"
    steps: int = Field(50, gt=0)
    seed: int = 1234
    batch_size: int = Field(250, gt=0)


class UnlearnRunConfig(Strict):
    """An `erasediff unlearn` run on a class-conditional model."""

    model: str = Field("digits", description="local diffusers folder, or 'digits' for the embedded default")
    classifier: str = Field("digits", description="local classifier folder, or 'digits'")
    data: Literal["digits"] = "digits"
    forget_classes: list[int] = Field(min_length=1)
    output_dir: Path
    checkpoint_every: int = Field(0, ge=0, description="0 = no checkpoints")
    unlearning: UnlearnSettings = Field(default_factory=UnlearnSettings)
    evaluation: EvalSettings = Field(default_factory=EvalSettings)

    @model_validator(mode="after")
    def _distinct_classes(self) -> "UnlearnRunConfig":
        if len(set(self.forget_classes)) != len(self.forget_classes):
            raise ValueError(f"forget_classes lists a class twice: {self.forget_classes}")
        return self


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every failing field."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


T = TypeVar("T", bound=BaseModel)


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise ErasediffError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ErasediffError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ErasediffError(f"config {path} must be a YAML mapping, got {type(raw).__name__}")
    return raw


def peek_key(path: str | Path, key: str) -> object:
    """One top-level value, to choose which config model validates the file."""
    return _read_mapping(Path(path)).get(key)


def load_yaml_config(path: str | Path, model: type[T]) -> T:
    """Parse and validate a YAML config; every failure becomes one ErasediffError line."""
    path = Path(path)
    raw = _read_mapping(path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ErasediffError(f"config {path}: {describe_validation_error(exc)}") from exc
