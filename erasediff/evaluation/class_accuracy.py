"""Class-conditional sample accuracy: does the model still draw each class it is asked for?

For each class, sample images conditioned on it and let the evaluator classify them. Reported per
class: accuracy, mean probability of the asked-for class and mean predictive entropy (as Selective
Amnesia reports). Forgotten classes should fall towards or below chance; retained ones stay high.
"""

from dataclasses import dataclass

import torch

from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.models.class_model import ClassDiffusionModel
from erasediff.models.classifier import Classifier
from erasediff.models.sampling import sample_classes


@dataclass(frozen=True)
class ClassScore:
    accuracy: float
    mean_prob: float
    entropy: float


def sample_per_class(
    model: ClassDiffusionModel, settings: EvalSettings, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """`samples_per_class` images of every class, from the evaluation seed (identical across models)."""
    labels = torch.arange(model.num_classes).repeat_interleave(settings.samples_per_class)
    images = sample_classes(
        model.unet,
        model.scheduler,
        labels,
        model.null_class,
        settings.diffusers_scale(),
        settings.steps,
        settings.sampler,
        settings.seed,
        settings.batch_size,
        progress,
    )
    return images, labels


def score_samples(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor) -> dict[int, ClassScore]:
    probs = classifier.predict_proba(images)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
    scores = {}
    for c in labels.unique().tolist():
        mask = labels == c
        scores[c] = ClassScore(
            accuracy=float((probs[mask].argmax(1) == c).float().mean()),
            mean_prob=float(probs[mask, c].mean()),
            entropy=float(entropy[mask].mean()),
        )
    return scores


def class_scores(
    model: ClassDiffusionModel, classifier: Classifier, settings: EvalSettings, progress: bool = True
) -> dict[int, ClassScore]:
    return score_samples(classifier, *sample_per_class(model, settings, progress))


def mean_accuracy(scores: dict[int, ClassScore], classes: list[int]) -> float:
    return sum(scores[c].accuracy for c in classes) / len(classes)


def quality_table(scores: dict[int, ClassScore], class_names: list[str]) -> str:
    lines = [f"{'class':>5} {'name':<8} {'accuracy':>8} {'p(class)':>8} {'entropy':>7}"]
    for c, s in scores.items():
        lines.append(f"{c:>5} {class_names[c]:<8} {s.accuracy:>8.1%} {s.mean_prob:>8.3f} {s.entropy:>7.3f}")
    lines.append(f"{'mean':>5} {'':<8} {mean_accuracy(scores, list(scores)):>8.1%}")
    return "\n".join(lines)


def before_after_table(
    before: dict[int, ClassScore], after: dict[int, ClassScore], class_names: list[str], forgotten: list[int]
) -> str:
    retained = [c for c in before if c not in forgotten]
    lines = [f"{'class':>5} {'name':<8} {'role':<9} {'base acc':>8} {'unlearned':>9} {'p(class) after':>14}"]
    for c in before:
        role = "FORGOTTEN" if c in forgotten else "retained"
        lines.append(
            f"{c:>5} {class_names[c]:<8} {role:<9} {before[c].accuracy:>8.1%} {after[c].accuracy:>9.1%} "
            f"{after[c].mean_prob:>14.3f}"
        )
    lines.append(
        f"forgotten classes mean accuracy: {mean_accuracy(before, forgotten):.1%} -> "
        f"{mean_accuracy(after, forgotten):.1%}"
    )
    lines.append(
        f"retained classes mean accuracy:  {mean_accuracy(before, retained):.1%} -> "
        f"{mean_accuracy(after, retained):.1%}"
    )
    return "\n".join(lines)
