"""The retain-probe guard-rail: cheap utility and forgetting readings during unlearning, and what to do with them.

A probe is measured on the base weights when it is built, and each reading says how much utility
was lost relative to that (`degradation`, a fraction) and whether forgetting is achieved. The guard
stops the run, or restores the best probed weights, once forgetting is achieved and degradation
exceeds the bound: the failure third-party benchmarks report for EraseDiff (strong erasure, wrecked
image quality) is caught while it happens instead of at the gate.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler, DiffusionPipeline

from erasediff.data.image_sets import LabeledImages
from erasediff.data.prompts import PromptRow
from erasediff.method.losses import Condition, NoisedBatch, diffusion_loss
from erasediff.method.unlearning_settings import ProbeSettings
from erasediff.models.classifier import Classifier
from erasediff.models.sampling import sample_classes, sample_prompts, to_channels


@dataclass(frozen=True)
class ProbeReading:
    degradation: float  # utility lost relative to the base model (0.1 = 10 % worse)
    forgotten: bool
    values: dict[str, float]


Probe = Callable[[torch.nn.Module], ProbeReading]


ProbeFactory = Callable[[torch.nn.Module], Probe]  # builds a probe from the base UNet (measured at once)


def _fixed_batch(
    data: LabeledImages, n: int, T: int, generator: torch.Generator, labels: torch.Tensor | None = None
) -> NoisedBatch:
    x0 = data.images[:n]
    return NoisedBatch(
        x0,
        data.labels[:n] if labels is None else labels,
        torch.randn(x0.shape, generator=generator),
        torch.randint(0, T, (len(x0),), generator=generator),
    )


def loss_probe(
    unet: torch.nn.Module,
    scheduler: DDPMScheduler,
    cond: Condition,
    held_out: LabeledImages,
    forget: LabeledImages,
    substitutes: torch.Tensor,
    settings: ProbeSettings,
    seed: int,
) -> Probe:
    """Utility: the diffusion loss on held-out retain items. Forgetting: the forget images' conditional
    advantage, L(forget | substitute) - L(forget | forgotten condition), which is positive while the
    condition still helps denoise its images and falls to zero once the model has let go of it.
    `unet` must hold the base weights (it is measured now); noise and timesteps are fixed per probe."""
    g = torch.Generator().manual_seed(seed)
    T, device = scheduler.config.num_train_timesteps, next(unet.parameters()).device
    n = min(len(forget), settings.held_out)
    retain_batch = _fixed_batch(held_out, settings.held_out, T, g).to(device)
    sub_labels = substitutes[torch.randint(len(substitutes), (n,), generator=g)]
    forget_true = _fixed_batch(forget, n, T, g).to(device)
    forget_sub = NoisedBatch(forget_true.x0, sub_labels.to(device), forget_true.noise, forget_true.timesteps)

    @torch.no_grad()
    def measure(model: torch.nn.Module) -> tuple[float, float]:
        retain = float(diffusion_loss(model, scheduler, retain_batch, cond))
        return retain, float(diffusion_loss(model, scheduler, forget_sub, cond)) - float(
            diffusion_loss(model, scheduler, forget_true, cond)
        )

    base_retain, base_gap = measure(unet)

    def probe(model: torch.nn.Module) -> ProbeReading:
        retain, gap = measure(model)
        return ProbeReading(
            (retain - base_retain) / base_retain,
            gap <= settings.forget_fraction * base_gap,
            {"heldout_retain_loss": retain, "forget_advantage": gap},
        )

    return probe


def accuracy_probe(
    sample: Callable[[torch.nn.Module], torch.Tensor],
    labels: torch.Tensor,
    classifier: Classifier,
    forget_classes: list[int],
    forgotten_max: float,
    base: torch.nn.Module,
) -> Probe:
    """Utility: the classifier's accuracy on samples of the retained classes; forgotten once its accuracy
    on the forgotten classes' samples is at most `forgotten_max`. `sample(model)` draws one image per
    label from fixed seeds; `base` holds the base weights (measured now)."""
    is_forget = torch.isin(labels, torch.tensor(forget_classes))

    def measure(model: torch.nn.Module) -> tuple[float, float]:
        images = sample(model)
        hits = (
            classifier.predict_proba(to_channels(images, classifier.config.in_channels)).argmax(1) == labels
        ).float()
        return float(hits[is_forget].mean()), float(hits[~is_forget].mean())

    _, base_retained = measure(base)

    def probe(model: torch.nn.Module) -> ProbeReading:
        forgotten, retained = measure(model)
        return ProbeReading(
            (base_retained - retained) / base_retained,
            forgotten <= forgotten_max,
            {"forgotten_accuracy": forgotten, "retained_accuracy": retained},
        )

    return probe


def probe_labels(
    forget_classes: list[int], retained_classes: list[int], forget_per_class: int, retained_per_class: int
) -> torch.Tensor:
    """The class of each probe sample: forgotten classes first."""
    return torch.cat(
        [
            torch.tensor(forget_classes).repeat_interleave(forget_per_class),
            torch.tensor(retained_classes, dtype=torch.long).repeat_interleave(retained_per_class),
        ]
    )


def class_sampler(
    scheduler: DDPMScheduler, null_class: int, labels: torch.Tensor, steps: int, seed: int = 4321
) -> Callable[[torch.nn.Module], torch.Tensor]:
    """Class-conditional DDIM samples (guidance 2) of a class model's UNet, one per label."""
    return lambda unet: sample_classes(unet, scheduler, labels, null_class, steps=steps, seed=seed, progress=False)


def prompt_sampler(
    pipe: DiffusionPipeline, rows: list[PromptRow], steps: int, guidance: float
) -> Callable[[torch.nn.Module], torch.Tensor]:
    """Text-to-image samples of `pipe` with its UNet swapped for the one probed, one per prompt row (its own seed)."""

    def sample(unet: torch.nn.Module) -> torch.Tensor:
        quiet = (
            {"requires_safety_checker": False} if "requires_safety_checker" in pipe.config else {}
        )  # no warning per probe
        probed = type(pipe)(**{**pipe.components, "unet": unet}, **quiet)
        probed.set_progress_bar_config(disable=True)
        return sample_prompts(probed, rows, steps, guidance, batch_size=len(rows), progress=False)

    return sample


class RetainGuard:
    """Reads the probe, keeps the best weights that forget (for `restore_best`), and says when to stop."""

    def __init__(self, probe: Probe, settings: ProbeSettings, named: dict[str, torch.nn.Parameter]) -> None:
        self.probe, self.settings, self.named = probe, settings, named
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None

    def check(self, unet: torch.nn.Module, step: int) -> tuple[dict[str, float], bool]:
        """The values to log at this step, and whether the run must end here."""
        reading = self.probe(unet)
        values = {
            "probe_degradation": reading.degradation,
            "probe_forgotten": float(reading.forgotten),
            **{f"probe_{k}": v for k, v in reading.values.items()},
        }
        if not reading.forgotten:
            return values, False
        if self.settings.action == "restore_best" and (self.best is None or reading.degradation < self.best[0]):
            self.best = (reading.degradation, step, {k: p.detach().cpu().clone() for k, p in self.named.items()})
        if self.settings.action == "log" or (
            self.settings.action != "stop_when_forgotten" and reading.degradation <= self.settings.max_degradation
        ):
            return values, False
        if self.best is not None and self.best[1] != step:
            with torch.no_grad():
                for k, p in self.named.items():
                    p.copy_(self.best[2][k])
            values["probe_restored_step"] = float(self.best[1])
        values["probe_stopped"] = 1.0
        return values, True
