"""What unlearning is configured by (a request's `unlearning:` block): the method, the lambda rule, the
forget loss, the budget, which parameters train, and the retain probe. Hashed to guard checkpoint resumption.
"""

from typing import Literal

from pydantic import Field, model_validator

from erasediff.method.losses import ForgetLoss
from erasediff.method.params import Preset
from erasediff.method.robust.relearn import RelearnSettings
from erasediff.models.lora import AdapterSettings
from erasediff.util.config import Strict


class LambdaSettings(Strict):
    mode: Literal["adaptive", "constant"] = "adaptive"
    eta: float = Field(0.1, ge=0, description="adaptive mode: required decrease of L_f as a multiple of ||g_f||^2")
    value: float = Field(0.1, ge=0, description="constant mode: lambda_t")


class ParamSettings(Strict):
    preset: Preset = "full"
    include: list[str] = []
    exclude: list[str] = []


Method = Literal["erasediff", "finetune", "neggrad", "salun", "esd"]
Recipe = Literal["robust", "paper", "finetune", "neggrad", "salun", "esd"]  # what each expands to: method/recipes.py


class NegGradSettings(Strict):
    alpha: float = Field(1.0, gt=0, description="weight of the ascent on the forget-set diffusion loss")


class SalunSettings(Strict):
    mask_fraction: float = Field(
        0.5, gt=0, le=1, description="share of weights SalUn may change (top |grad| of the forget loss)"
    )
    alpha: float = Field(1.0, ge=0, description="weight of the retain loss next to the remap forget loss")


class EsdSettings(Strict):
    negative_guidance: float = Field(1.0, gt=0, description="eta of ESD's target eps_null - eta (eps_c - eps_null)")
    start_guidance: float = Field(3.0, ge=0, description="guidance when sampling x_t from the current model")
    sampling_steps: int = Field(20, gt=1, description="DDIM steps of the schedule x_t is sampled on")


class ProbeSettings(Strict):
    """The retain-probe guard-rail: every `every` steps, measure the loss on held-out retain images and
    whether forgetting is achieved; once it is, stop (or restore the best probed weights) if the held-out
    loss has risen more than `max_degradation` above the base model's, or, with `stop_when_forgotten`, stop there
    whatever the held-out loss (the cheapest erasure: no update past the first probe that reads forgotten)."""

    every: int = Field(0, ge=0, description="steps between probes; 0 = no probe")
    action: Literal["log", "stop", "restore_best", "stop_when_forgotten"] = "stop"
    max_degradation: float = Field(
        0.05, ge=0, description="largest relative rise of the held-out retain loss over the base model's"
    )
    held_out: int = Field(64, gt=0, description="retain items set aside for the probe and never trained on")
    forget_fraction: float = Field(
        0.1,
        ge=0,
        le=1,
        description="forgotten once the forget images' conditional advantage "
        "(loss under a substitute minus loss under the forgotten condition) is below this share of the base model's",
    )


# Overrides that switch this project's robust additions off (relearn, forget_on_retain, retain_anchor, forget_row): each
# method
# as published. Benchmarks run the paper's plain update from one place, so a new addition is switched off here once.
PAPER_PLAIN = {"relearn": None, "forget_on_retain": 0.0, "retain_anchor": 0.0, "forget_row": "keep"}


class UnlearnSettings(Strict):
    """Everything that changes the unlearned weights (hashed to guard checkpoint resumption)."""

    recipe: Recipe | None = Field(
        None,
        description="the named recipe these settings were expanded from (a request's unlearning.recipe); "
        "recorded with them, never read by the method; null = set by hand",
    )
    method: Method = Field(
        "erasediff", description="erasediff, or a baseline to compare with (finetune, neggrad, salun, esd)"
    )
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
    adapter: AdapterSettings | None = Field(
        None,
        description="train a LoRA on the selected layers instead of their weights (models/lora.py): "
        "a text-to-image version then stores the adapter only; null = full weights",
    )
    seed: int = 0
    processes: int = Field(
        1,
        ge=1,
        description="data-parallel processes on one node (one per GPU) under accelerate; "
        "batch sizes are per process, so the effective batch grows with this",
    )
    mixed_precision: Literal["no", "bf16"] = "no"
    gradient_checkpointing: bool = Field(
        False, description="recompute UNet activations in backward: less memory, about 30% more time"
    )
    optimizer: Literal["adam", "adam8bit"] = Field(
        "adam", description="adam8bit needs bitsandbytes: GPU nodes, or 0.49 or later on the CPU"
    )
    neggrad: NegGradSettings = Field(default_factory=NegGradSettings)
    salun: SalunSettings = Field(default_factory=SalunSettings)
    esd: EsdSettings = Field(default_factory=EsdSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    relearn: RelearnSettings | None = Field(
        None,
        description="a robust addition against relearning attacks (method/robust/relearn.py): "
        "erasediff (forget_loss remap) and the baselines with a forget term (neggrad, salun, esd); "
        "null = each method as published",
    )
    forget_on_retain: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="a robust addition against the guidance sweep (method/robust/forget_on_retain.py): "
        "share of each forget batch whose images are retain images, kept under the forgotten condition and "
        "remapped to their own condition (erasediff remap, salun); 0 = each method as published",
    )
    retain_anchor: float = Field(
        0.0,
        ge=0,
        description="a robust addition that holds quality (method/robust/retain_anchor.py): "
        "weight of the frozen original's prediction as a second target of the retain loss (every method with a "
        "retain loss: erasediff, finetune, neggrad, salun); 0 = each method as published",
    )
    forget_row: Literal["keep", "null"] = Field(
        "keep",
        description="a robust addition for class-conditional models (method/robust/forget_row.py): "
        "null = once erased, each forgotten class's embedding row becomes the null class's, so its label "
        "carries no condition of its own; keep = each method as published",
    )

    @model_validator(mode="after")
    def _relearn_needs_a_forget_term(self) -> "UnlearnSettings":
        if self.relearn is not None and (
            self.method == "finetune" or (self.method == "erasediff" and self.forget_loss != "remap")
        ):
            raise ValueError(
                "relearn (the project's relearning-resistant term) needs a forget term to evaluate after the simulated "
                "attack: "
                "method erasediff with forget_loss remap, neggrad, salun or esd"
            )
        return self

    @model_validator(mode="after")
    def _retain_rows_need_a_remap(self) -> "UnlearnSettings":
        if self.forget_on_retain and not self.uses_substitutes:
            raise ValueError(
                "forget_on_retain (the project's term against the guidance sweep) remaps the forgotten condition on "
                "retain images "
                "to their own condition: method erasediff with forget_loss remap, or salun"
            )
        kept = self.forget_batch_size - round(self.forget_on_retain * self.forget_batch_size)
        if kept < 1 or (self.relearn is not None and self.relearn.batch is not None and kept < self.relearn.batch):
            raise ValueError(
                f"forget_on_retain {self.forget_on_retain} leaves {kept} of the {self.forget_batch_size} forget rows "
                "to images of the "
                "forgotten class; at least 1, and at least relearn.batch when the relearning term is on"
            )
        return self

    @model_validator(mode="after")
    def _anchor_needs_a_retain_loss(self) -> "UnlearnSettings":
        if self.retain_anchor and self.method == "esd":
            raise ValueError(
                "retain_anchor anchors the retain loss to the original's prediction; esd has no retain loss"
            )
        return self

    @model_validator(mode="after")
    def _adapter_needs_dense_updates(self) -> "UnlearnSettings":
        if self.adapter is not None and self.method == "salun":
            raise ValueError(
                "adapter: SalUn masks individual weights by saliency, which a LoRA does not have; use full weights for "
                "salun"
            )
        return self

    @property
    def uses_substitutes(self) -> bool:
        """Whether the method aims forgotten conditions at substitutes (classes or anchor prompts)."""
        return (self.method == "erasediff" and self.forget_loss == "remap") or self.method == "salun"
