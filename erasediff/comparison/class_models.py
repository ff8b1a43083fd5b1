"""Original vs unlearned, side by side: class accuracy, FID/KID, grids, and a results table.

Both models are sampled from the same seeds; every number carries a protocol record saying what
produced it, so a gate or a reviewer can check it was measured the way they think.
"""

import json
from pathlib import Path

import numpy as np
import torch

from erasediff.comparison.attacks import evaluate_attacks
from erasediff.comparison.eval_config import ClassEvalConfig
from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import check_forget_classes
from erasediff.defaults.digits_models import digits_split_seed
from erasediff.defaults.resolve import model_path, resolve_classifier
from erasediff.evaluation.class_accuracy import ClassScore, score_samples
from erasediff.evaluation.features import FeatureExtractor, classifier_features, clip_features, inception_features
from erasediff.evaluation.fid import FidResult, ReferenceStats, features_of_tensors, fid_kid, reference_stats
from erasediff.evaluation.generation import generate_class_set
from erasediff.evaluation.intervals import INTERVAL, class_bounds
from erasediff.evaluation.metric_settings import FidSettings
from erasediff.models.class_model import ClassDiffusionModel, load_class_model
from erasediff.reporting.plots import save_before_after_grid
from erasediff.util.cache import default_cache_root
from erasediff.util.errors import DataError
from erasediff.util.hashing import file_hash, folder_hash

RESULTS_JSON, RESULTS_MD = "results.json", "results.md"


def build_extractor(settings: FidSettings, classifier=None, classifier_weights: Path | None = None) -> FeatureExtractor:
    if settings.features == "classifier" and classifier is None:
        raise DataError(
            "fid.features 'classifier' needs a class-conditional evaluation; use clip or inception for prompts"
        )
    if settings.features == "inception":
        return inception_features(settings.inception_weights)
    if settings.features == "clip":
        if settings.clip_model is None:
            raise DataError("fid.features is clip but fid.clip_model names no local CLIP folder")
        return clip_features(settings.clip_model)
    return classifier_features(classifier, classifier_weights)


def _mean(scores: dict[int, ClassScore], classes: list[int], attr: str) -> float:
    return float(np.mean([getattr(scores[c], attr) for c in classes]))


def measure_class_samples(
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier,
    extractor: FeatureExtractor,
    reference: ReferenceStats,
    forget: list[int],
    retained: list[int],
    earlier: list[int],
    neighbours: list[int] = (),
) -> tuple[dict, dict, FidResult]:
    """The metrics of one model's class-conditional samples: accuracies with their bounds, FID/KID of the retained
    classes."""
    scores = score_samples(classifier, images, labels)
    fid = fid_kid(features_of_tensors(images[np.isin(labels.numpy(), retained)], extractor), reference, extractor)
    metrics = {
        "forgotten_accuracy": _mean(scores, forget, "accuracy"),
        **class_bounds("forgotten_accuracy", scores, labels, forget),
        "forgotten_mean_prob": _mean(scores, forget, "mean_prob"),
        "forgotten_entropy": _mean(scores, forget, "entropy"),
        "retained_accuracy": _mean(scores, retained, "accuracy"),
        **class_bounds("retained_accuracy", scores, labels, retained),
        **fid.metrics(),
        **({"earlier_forgotten_accuracy": max(scores[c].accuracy for c in earlier)} if earlier else {}),
        **neighbour_metrics(scores, labels, list(neighbours)),
    }
    return metrics, {c: vars(s) for c, s in scores.items()}, fid


def neighbour_metrics(scores: dict[int, ClassScore], labels: torch.Tensor, neighbours: list[int]) -> dict[str, float]:
    """Accuracy on the named neighbour classes, apart from the retained average (over-erasure hits neighbours first)."""
    if not neighbours:
        return {}
    return {
        "neighbour_accuracy": _mean(scores, neighbours, "accuracy"),
        **class_bounds("neighbour_accuracy", scores, labels, neighbours),
    }


def real_digits_stats(
    resolution: int,
    split_seed: int,
    retained: list[int],
    heldout_only: bool,
    extractor: FeatureExtractor,
    fid: FidSettings,
) -> ReferenceStats:
    """FID/KID statistics of the real digits of the retained classes: every one, or the held-out split's alone."""
    train, heldout = load_digits_split(resolution, seed=split_seed)
    real = heldout if heldout_only else train.concat(heldout)
    images = real.images[np.isin(real.labels.numpy(), retained)]
    return reference_stats(images, extractor, fid.cache_dir or default_cache_root() / "fid_stats", fid.min_reference)


def real_reference(
    model: ClassDiffusionModel, retained: list[int], config: ClassEvalConfig, extractor: FeatureExtractor
) -> ReferenceStats:
    """Real digits of the retained classes (the split the model was trained on decides which are held out)."""
    return real_digits_stats(
        model.unet.config.sample_size,
        digits_split_seed(model.lineage),
        retained,
        config.reference == "digits-heldout",
        extractor,
        config.fid,
    )


def evaluate_pair(
    original: str | Path, unlearned: str | Path, config: ClassEvalConfig, out: Path, progress: bool = True
) -> dict:
    """Evaluate both models; write grids, results.json and results.md under `out`; return the results."""
    out = Path(out)
    dirs = {"original": model_path(original), "unlearned": model_path(unlearned)}
    models = {name: load_class_model(d) for name, d in dirs.items()}
    num_classes = models["original"].num_classes
    if models["unlearned"].num_classes != num_classes:
        raise DataError(f"the models disagree on their classes: {num_classes} vs {models['unlearned'].num_classes}")
    check_forget_classes(config.forget_classes, num_classes)
    earlier = [c for c in config.earlier_forget_classes if c not in config.forget_classes]
    if earlier:
        check_forget_classes(earlier, num_classes)
    retained = [c for c in range(num_classes) if c not in config.forget_classes and c not in earlier]

    classifier, classifier_weights = resolve_classifier(config.classifier)
    extractor = build_extractor(config.fid, classifier, classifier_weights)
    reference = real_reference(models["original"], retained, config, extractor)

    g = config.generation
    sampling = g.protocol()
    results: dict = {
        "forget_classes": config.forget_classes,
        "earlier_forget_classes": earlier,
        "retained_classes": retained,
        "models": {},
        "protocol": {},
    }
    generated = {}
    for name, model in models.items():
        model_hash = folder_hash(dirs[name])
        generated[name] = gen = generate_class_set(
            model, model_hash, list(range(num_classes)), g, out / f"samples-{name}", progress
        )
        metrics, per_class, fid = measure_class_samples(
            gen.images,
            gen.labels,
            classifier,
            extractor,
            reference,
            config.forget_classes,
            retained,
            earlier,
            config.neighbours,
        )
        results["models"][name] = {
            "path": str(dirs[name]),
            "sha256": model_hash,
            "metrics": metrics,
            "per_class": per_class,
        }
        results["protocol"][fid.metric] = {
            **fid.protocol,
            "reference": config.reference,
            "generated_classes": retained,
            **sampling,
        }
    results["protocol"]["class_accuracy"] = {
        "implementation": "evaluator argmax on class-conditional samples",
        "torch_version": torch.__version__,
        "classifier": str(classifier_weights),
        "weights_sha256": file_hash(classifier_weights),
        **sampling,
        "interval": INTERVAL,
        "forgotten_samples": g.samples_per_class * len(config.forget_classes),
        "retained_samples": g.samples_per_class * len(retained),
    }
    grids = out / "grids"
    grids.mkdir(parents=True, exist_ok=True)
    before, after = generated["original"], generated["unlearned"]
    for c in range(num_classes):
        mask = before.labels == c
        save_before_after_grid(
            before.images[mask],
            after.images[mask],
            before.labels[mask],
            config.grid_per_class,
            grids / f"class-{c:02d}.png",
        )
    save_before_after_grid(before.images, after.images, before.labels, config.grid_per_class, grids / "all-classes.png")
    if config.attacks is not None:
        train, heldout = load_digits_split(
            models["original"].unet.config.sample_size, seed=digits_split_seed(models["original"].lineage)
        )
        attacked = evaluate_attacks(
            models, train, heldout, config.forget_classes, retained, classifier, config.attacks, grids, progress
        )
        results["attacks"], results["protocol"]["attacks"] = attacked["attacks"], attacked["protocol"]

    return write_results(results, out, f"forgotten classes {results['forget_classes']}")


def write_results(results: dict, out: Path, title: str) -> dict:
    """results.md, then results.json last: it appears only once everything else is written."""
    results["delta"] = {
        k: results["models"]["unlearned"]["metrics"][k] - v for k, v in results["models"]["original"]["metrics"].items()
    }
    (out / RESULTS_MD).write_text(results_markdown(results, title))
    partial = out / f".{RESULTS_JSON}.partial"
    partial.write_text(json.dumps(results, indent=2))
    partial.rename(out / RESULTS_JSON)
    return results


def results_markdown(results: dict, title: str) -> str:
    original, unlearned = results["models"]["original"]["metrics"], results["models"]["unlearned"]["metrics"]
    lines = [title, "", "| metric | original | unlearned | delta |", "|---|---:|---:|---:|"]
    for key, value in original.items():
        lines.append(f"| {key} | {value:.4f} | {unlearned[key]:.4f} | {results['delta'][key]:+.4f} |")
    return "\n".join(lines) + "\n"
