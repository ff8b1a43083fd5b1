"""Recovery attacks on a class-conditional model: can the erased class be brought back?

* `inversion`: a free class embedding, optimised to denoise k held-out images of the erased class with every
  weight frozen, then sampled with (Pham et al. 2023's concept inversion, for class conditioning);
* `relearn_forget`: every weight fine-tuned for a few steps on the k held-out images, then the class sampled;
* `relearn_retain`: the same budget on retain images only (does unrelated data bring it back?);
* `relearn_inverted`: inversion first, then `relearn_forget`'s budget under the inverted row, every weight and the row
  learning: relearning that does not go through the erased label, for erasures that change what the label points at
  (`unlearning.forget_row`), and that starts from whatever key the weights still answer to;
* `guidance_sweep`: the class sampled at each guidance of a sweep; the strongest counts.

Success is the share of attacked samples the evaluator reads as the erased class. Every attack works on a copy:
the model passed in is never changed.
"""

import copy
from typing import Literal

import torch
from pydantic import Field

from erasediff.attacks.budget import Budget, Budgeted
from erasediff.attacks.denoise import fit_denoising
from erasediff.attacks.free_embedding import add_free_row
from erasediff.attacks.record import AttackResult
from erasediff.models.class_model import ClassDiffusionModel
from erasediff.models.classifier import Classifier
from erasediff.models.sampling import sample_classes

ClassAttack = Literal["inversion", "relearn_forget", "relearn_retain", "relearn_inverted", "guidance_sweep"]


class ClassAttackSettings(Budgeted):
    """Budgets sized for the embedded digits model on 2 CPU cores (standard: all five attacks in under a minute a
    model)."""

    BUDGETS = {
        "standard": {"k": 8, "samples": 64, "inversion_steps": 150, "relearn_steps": 30, "retain_images": 64},
        "thorough": {"k": 16, "samples": 128, "inversion_steps": 300, "relearn_steps": 100, "retain_images": 128},
    }

    budget: Budget = Field(
        "standard", description="standard | thorough: the attackers' images, steps and samples (attacks/budget.py)"
    )

    attacks: list[ClassAttack] = Field(
        ["inversion", "relearn_forget", "relearn_retain", "relearn_inverted", "guidance_sweep"], min_length=1
    )
    k: int = Field(8, gt=0, description="held-out images of the erased class the attacker holds")
    samples: int = Field(64, gt=0, description="attacked samples scored per attack")
    inversion_steps: int = Field(150, gt=0)
    inversion_lr: float = Field(0.05, gt=0)
    relearn_steps: int = Field(30, gt=0)
    relearn_lr: float = Field(1e-4, gt=0, description="the erasure's own learning rate")
    batch_size: int = Field(8, gt=0)
    sweep: list[float] = Field(
        [0.0, 1.0, 2.0, 4.0, 8.0],
        min_length=1,
        description="guidance w, reference convention (1 + w) eps_c - w eps_null",
    )
    sampling_steps: int = Field(25, gt=0)
    guidance: float = Field(1.0, ge=0, description="w for every attack but the sweep, reference convention")
    seed: int = 0
    gold: str | None = Field(
        "retrain",
        description="the gold standard: 'retrain' (the digits recipe retrained on the retain classes, "
        "cached), a local model folder, or null (then a margin-over-gold gate cannot pass)",
    )
    retain_images: int = Field(64, gt=0, description="retain images the relearn_retain attacker fine-tunes on")


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


def inversion(
    model: ClassDiffusionModel, target: int, images: torch.Tensor, classifier: Classifier, settings: ClassAttackSettings
) -> AttackResult:
    """A new class id whose embedding (initialised at the null class's) is the only trainable parameter."""
    unet, new_id, curve = _inverted(model, images, settings)
    samples = _sample(model, unet, new_id, settings.guidance, settings)
    return AttackResult(
        "inversion",
        _success(classifier, samples, target),
        samples,
        {
            "attack": "class-embedding inversion",
            "k": len(images),
            "steps": settings.inversion_steps,
            "lr": settings.inversion_lr,
            "init": "the null class's embedding",
            "final_loss": curve[-1],
            **_common(settings),
        },
    )


def _inverted(
    model: ClassDiffusionModel, images: torch.Tensor, settings: ClassAttackSettings
) -> tuple[torch.nn.Module, int, list[float]]:
    """A copy of the UNet with a new class row fitted to denoise `images`, every weight frozen: (copy, the row's id,
    loss curve)."""
    unet = copy.deepcopy(model.unet).requires_grad_(False)
    unet.class_embedding, free, new_id = add_free_row(unet.class_embedding.weight, model.null_class)
    curve = fit_denoising(
        unet,
        model.scheduler,
        images,
        lambda idx: {"class_labels": torch.full((len(idx),), new_id)},
        [free],
        settings.inversion_steps,
        settings.inversion_lr,
        settings.batch_size,
        settings.seed,
        "inversion attack",
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
    """Fine-tune every weight on (images, labels) with the attack budget, then sample the erased class."""
    what = "fine-tuning on the attacker's images" if name == "relearn_forget" else "fine-tuning on retain images only"
    return _fine_tune_and_sample(
        model, copy.deepcopy(model.unet), target, target, images, labels, classifier, settings, name, what
    )


def relearn_inverted(
    model: ClassDiffusionModel, target: int, images: torch.Tensor, classifier: Classifier, settings: ClassAttackSettings
) -> AttackResult:
    """The inversion attack's row, then every weight and that row fine-tuned on the same images under it."""
    unet, new_id, _ = _inverted(model, images, settings)
    return _fine_tune_and_sample(
        model,
        unet,
        new_id,
        target,
        images,
        torch.full((len(images),), new_id),
        classifier,
        settings,
        "relearn_inverted",
        "class-embedding inversion, then fine-tuning under the inverted row",
    )


def _fine_tune_and_sample(
    model: ClassDiffusionModel,
    unet: torch.nn.Module,
    label: int,
    target: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier: Classifier,
    settings: ClassAttackSettings,
    name: str,
    what: str,
) -> AttackResult:
    """Every weight of `unet` (a copy) fine-tuned on (images, labels) with the attack budget; then `label` sampled and
    read as `target`."""
    unet.requires_grad_(True)
    curve = fit_denoising(
        unet,
        model.scheduler,
        images,
        lambda idx: {"class_labels": labels[idx]},
        unet.parameters(),
        settings.relearn_steps,
        settings.relearn_lr,
        settings.batch_size,
        settings.seed + 1,
        f"{name} attack",
    )
    samples = _sample(model, unet, label, settings.guidance, settings)
    return AttackResult(
        name,
        _success(classifier, samples, target),
        samples,
        {
            "attack": what,
            "images": len(images),
            "steps": settings.relearn_steps,
            "lr": settings.relearn_lr,
            "final_loss": curve[-1],
            **_common(settings),
        },
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
    """Every configured attack on `model`; `forget_images` are held-out images of the erased class (the first k are
    used)."""
    torch.manual_seed(settings.seed)
    held = forget_images[: settings.k]
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
