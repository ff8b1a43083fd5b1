"""Recovery attacks on a class-conditional model: can the erased class be brought back?

* `inversion`: a free class embedding, optimised to denoise k held-out images of the erased class with every
  weight frozen, then sampled with (Pham et al. 2023's concept inversion, for class conditioning);
* `relearn_forget`: every weight fine-tuned for a few steps on the k held-out images, then the class sampled;
* `relearn_retain`: the same budget on retain images only (does unrelated data bring it back?);
* `relearn_inverted`: inversion first, then `relearn_forget`'s budget under the inverted row, every weight and the row
  learning: relearning that does not go through the erased label, for erasures that change what the label points at
  (`unlearning.forget_row`), and that starts from whatever key the weights still answer to;
* `guidance_sweep`: the class sampled at each guidance of a sweep; the strongest counts.

Success is the share of attacked samples the evaluator reads as the erased class. Each attack is a curve over the
attacker's budget (ClassAttackSettings: images held, steps, learning rate, guidance), one training run read at
several step counts; its success is the best point. Every attack works on a copy: the model passed in is never
changed.
"""

import copy
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from erasediff.attacks.budget import Budget, Budgeted, grid
from erasediff.attacks.denoise import fit_denoising
from erasediff.attacks.free_embedding import add_free_row
from erasediff.attacks.record import AttackResult
from erasediff.models.class_model import ClassDiffusionModel
from erasediff.models.classifier import Classifier
from erasediff.models.sampling import sample_classes

ClassAttack = Literal["inversion", "relearn_forget", "relearn_retain", "relearn_inverted", "guidance_sweep"]


class ClassAttackSettings(Budgeted):
    """The attacker's budget as a grid: every relearning attack runs once per (images held k, learning rate) and is
    read at each step count of `relearn_steps`; inversion is read at each of `inversion_steps`; every reading samples
    at each `guidance`. A single number is a grid of one point. Budgets are sized for the embedded digits model on
    2 CPU cores."""

    BUDGETS = {
        "standard": {
            "k": [8, 16],
            "samples": 64,
            "inversion_steps": [150],
            "relearn_steps": [30, 60],
            "relearn_lr": [1e-4],
            "guidance": [1.0],
            "retain_images": 64,
        },
        "thorough": {
            "k": [8, 16, 32],
            "samples": 128,
            "inversion_steps": [150, 300],
            "relearn_steps": [30, 100, 200],
            "relearn_lr": [1e-4, 3e-4],
            "guidance": [1.0, 4.0],
            "retain_images": 128,
        },
    }

    budget: Budget = Field(
        "standard",
        description="standard | thorough: the attackers' grid of images, steps and samples (attacks/budget.py)",
    )

    attacks: list[ClassAttack] = Field(
        ["inversion", "relearn_forget", "relearn_retain", "relearn_inverted", "guidance_sweep"], min_length=1
    )
    k: list[PositiveInt] = Field(
        [8], min_length=1, description="held-out images of the erased class the attacker holds"
    )
    samples: int = Field(64, gt=0, description="attacked samples scored per reading")
    inversion_steps: list[PositiveInt] = Field([150], min_length=1, description="inversion read at each step count")
    inversion_lr: float = Field(0.05, gt=0)
    relearn_steps: list[PositiveInt] = Field([30], min_length=1, description="relearning read at each step count")
    relearn_lr: list[PositiveFloat] = Field([1e-4], min_length=1, description="one relearning run per rate")
    batch_size: int = Field(8, gt=0)
    sweep: list[float] = Field(
        [0.0, 1.0, 2.0, 4.0, 8.0],
        min_length=1,
        description="guidance w, reference convention (1 + w) eps_c - w eps_null",
    )
    sampling_steps: int = Field(25, gt=0)
    guidance: list[NonNegativeFloat] = Field(
        [1.0], min_length=1, description="w of every reading but the sweep's, reference convention"
    )
    seed: int = 0
    gold: str | None = Field(
        "retrain",
        description="the gold standard: 'retrain' (the digits recipe retrained on the retain classes, "
        "cached), a local model folder, or null (then a margin-over-gold gate cannot pass)",
    )
    retain_images: int = Field(64, gt=0, description="retain images the relearn_retain attacker fine-tunes on")

    @field_validator("k", "inversion_steps", "relearn_steps", "relearn_lr", "guidance", mode="before")
    @classmethod
    def _grid(cls, value: Any) -> Any:
        return grid(value)


def _sample(
    model: ClassDiffusionModel, unet: torch.nn.Module, label: int, w: float, settings: ClassAttackSettings
) -> torch.Tensor:
    labels = torch.full((settings.samples,), label)
    return sample_classes(
        unet,
        model.scheduler,
        labels,
        model.null_class,
        w + 1,
        settings.sampling_steps,
        "ddim",
        settings.seed + 7,
        settings.samples,
        False,
    )


def _success(classifier: Classifier, images: torch.Tensor, target: int) -> float:
    return float((classifier.predict_proba(images).argmax(1) == target).float().mean())


class Readings:
    """The points of one attack's curve: each reading samples the attacked model at every guidance of the grid."""

    def __init__(self, model: ClassDiffusionModel, classifier: Classifier, target: int, settings: ClassAttackSettings):
        self.model, self.classifier, self.target, self.settings = model, classifier, target, settings
        self.points: list[dict] = []
        self.best: tuple[float, torch.Tensor] | None = None

    def read(self, unet: torch.nn.Module, label: int, **budget: float) -> None:
        for w in self.settings.guidance:
            samples = _sample(self.model, unet, label, w, self.settings)
            success = _success(self.classifier, samples, self.target)
            self.points.append({**budget, "guidance": w, "success": success})
            if self.best is None or success >= self.best[0]:
                self.best = (success, samples)

    def result(self, name: str, protocol: dict) -> AttackResult:
        """The attack's success is its best reading (the attacker picks the budget that worked)."""
        assert self.best is not None
        return AttackResult(name, self.best[0], self.best[1], {**protocol, **_common(self.settings)}, self.points)


def inversion(
    model: ClassDiffusionModel, target: int, images: torch.Tensor, classifier: Classifier, settings: ClassAttackSettings
) -> AttackResult:
    """A new class id whose embedding (initialised at the null class's) is the only trainable parameter; one
    inversion per k, read at each step count."""
    readings = Readings(model, classifier, target, settings)
    for k in settings.k:
        _inverted(
            model, images[:k], settings, lambda unet, new_id, step, k=k: readings.read(unet, new_id, k=k, steps=step)
        )
    return readings.result(
        "inversion",
        {
            "attack": "class-embedding inversion",
            "k": settings.k,
            "steps": settings.inversion_steps,
            "lr": settings.inversion_lr,
            "init": "the null class's embedding",
        },
    )


def _inverted(
    model: ClassDiffusionModel,
    images: torch.Tensor,
    settings: ClassAttackSettings,
    read: Callable[[torch.nn.Module, int, int], None] | None = None,
) -> tuple[torch.nn.Module, int, list[float]]:
    """A copy of the UNet with a new class row fitted to denoise `images`, every weight frozen: (copy, the row's id,
    loss curve). `read(unet, row id, step)` is called at each step count of `settings.inversion_steps`."""
    unet = copy.deepcopy(model.unet).requires_grad_(False)
    unet.class_embedding, free, new_id = add_free_row(unet.class_embedding.weight, model.null_class)
    curve = fit_denoising(
        unet,
        model.scheduler,
        images,
        lambda idx: {"class_labels": torch.full((len(idx),), new_id)},
        [free],
        max(settings.inversion_steps),
        settings.inversion_lr,
        settings.batch_size,
        settings.seed,
        "inversion attack",
        readouts={s: (lambda step: read(unet, new_id, step)) for s in settings.inversion_steps} if read else None,
    )
    return unet, new_id, curve


def relearn(
    model: ClassDiffusionModel,
    target: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier: Classifier,
    settings: ClassAttackSettings,
    name: str,
) -> AttackResult:
    """Fine-tune every weight on (images, labels), one run per (k, learning rate) read at each step count, then
    sample the erased class. relearn_retain fine-tunes on all its retain images (k does not apply)."""
    readings = Readings(model, classifier, target, settings)
    ks = settings.k if name == "relearn_forget" else [len(images)]
    for k in ks:
        for lr in settings.relearn_lr:
            _fine_tune(
                model, copy.deepcopy(model.unet), target, images[:k], labels[:k], settings, lr, readings, name, k
            )
    what = "fine-tuning on the attacker's images" if name == "relearn_forget" else "fine-tuning on retain images only"
    return readings.result(name, {"attack": what, "k": ks, "steps": settings.relearn_steps, "lr": settings.relearn_lr})


def relearn_inverted(
    model: ClassDiffusionModel, target: int, images: torch.Tensor, classifier: Classifier, settings: ClassAttackSettings
) -> AttackResult:
    """The inversion attack's row (its longest inversion), then every weight and that row fine-tuned on the same
    images under it; one run per (k, learning rate), read at each step count."""
    readings = Readings(model, classifier, target, settings)
    for k in settings.k:
        unet, new_id, _ = _inverted(model, images[:k], settings)
        for lr in settings.relearn_lr:
            labels = torch.full((k,), new_id)
            _fine_tune(
                model, copy.deepcopy(unet), new_id, images[:k], labels, settings, lr, readings, "relearn_inverted", k
            )
    return readings.result(
        "relearn_inverted",
        {
            "attack": "class-embedding inversion, then fine-tuning under the inverted row",
            "k": settings.k,
            "steps": settings.relearn_steps,
            "lr": settings.relearn_lr,
        },
    )


def _fine_tune(
    model: ClassDiffusionModel,
    unet: torch.nn.Module,
    label: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: ClassAttackSettings,
    lr: float,
    readings: Readings,
    name: str,
    k: int,
) -> None:
    """Every weight of `unet` (a copy) fine-tuned on (images, labels) for the longest step count of the grid, `label`
    read at each step count: one run gives the whole steps axis."""
    unet.requires_grad_(True)
    fit_denoising(
        unet,
        model.scheduler,
        images,
        lambda idx: {"class_labels": labels[idx]},
        unet.parameters(),
        max(settings.relearn_steps),
        lr,
        settings.batch_size,
        settings.seed + 1,
        f"{name} attack",
        readouts={s: (lambda step: readings.read(unet, label, k=k, lr=lr, steps=step)) for s in settings.relearn_steps},
    )


def guidance_sweep(
    model: ClassDiffusionModel, target: int, classifier: Classifier, settings: ClassAttackSettings
) -> AttackResult:
    """The erased class at every guidance of the sweep; the attack's success is the best one."""
    found = {w: _sample(model, model.unet, target, w, settings) for w in settings.sweep}
    rates = {w: _success(classifier, s, target) for w, s in found.items()}
    best = max(rates, key=rates.get)
    return AttackResult(
        "guidance_sweep",
        rates[best],
        found[best],
        {
            "attack": "guidance sweep",
            "sweep": settings.sweep,
            "success_per_guidance": rates,
            "best_guidance": best,
            **_common(settings),
        },
        [{"guidance": w, "success": r} for w, r in rates.items()],
    )


def _common(settings: ClassAttackSettings) -> dict:
    return {
        "samples": settings.samples,
        "sampling_steps": settings.sampling_steps,
        "guidance_w": settings.guidance,
        "guidance_convention": "reference: (1 + w) eps_c - w eps_null",
        "seed": settings.seed,
    }


def run_class_attacks(
    model: ClassDiffusionModel,
    target: int,
    forget_images: torch.Tensor,
    retain_images: torch.Tensor,
    retain_labels: torch.Tensor,
    classifier: Classifier,
    settings: ClassAttackSettings,
) -> dict[str, AttackResult]:
    """Every configured attack on `model`; `forget_images` are held-out images of the erased class (the first k of
    each grid point are used)."""
    torch.manual_seed(settings.seed)
    held = forget_images[: max(settings.k)]
    results = {}
    for name in settings.attacks:
        if name == "inversion":
            results[name] = inversion(model, target, held, classifier, settings)
        elif name == "relearn_forget":
            results[name] = relearn(model, target, held, torch.full((len(held),), target), classifier, settings, name)
        elif name == "relearn_retain":
            results[name] = relearn(model, target, retain_images, retain_labels, classifier, settings, name)
        elif name == "relearn_inverted":
            results[name] = relearn_inverted(model, target, held, classifier, settings)
        else:
            results[name] = guidance_sweep(model, target, classifier, settings)
    return results
