"""Original vs unlearned, side by side: class accuracy, FID/KID, grids, and a results table.

Both models are sampled from the same seeds; every number carries a protocol record saying what
produced it, so a gate or a reviewer can check it was measured the way they think.
"""

import json
from pathlib import Path

import numpy as np
import torch

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import check_forget_classes
from erasediff.defaults.digits_models import digits_split_seed
from erasediff.defaults.resolve import model_path, resolve_classifier
from erasediff.evaluation.class_accuracy import ClassScore, score_samples
from erasediff.evaluation.features import FeatureExtractor, classifier_features, clip_features, inception_features
from erasediff.evaluation.fid import features_of_tensors, fid_kid, reference_stats
from erasediff.evaluation.generation import generate_class_set
from erasediff.evaluation.intervals import INTERVAL, class_bounds
from erasediff.evaluation.settings import ClassEvalConfig, FidSettings
from erasediff.models.class_model import load_class_model
from erasediff.reporting.plots import save_before_after_grid
from erasediff.util.cache import default_cache_root
from erasediff.util.errors import DataError
from erasediff.util.hashing import file_hash, folder_hash

RESULTS_JSON, RESULTS_MD = "results.json", "results.md"


def build_extractor(settings: FidSettings, classifier=None, classifier_weights: Path | None = None) -> FeatureExtractor:
    if settings.features == "classifier" and classifier is None:
        raise DataError("fid.features 'classifier' needs a class-conditional evaluation; use clip or inception for prompts")
    if settings.features == "inception":
        return inception_features(settings.inception_weights)
    if settings.features == "clip":
        if settings.clip_model is None:
            raise DataError("fid.features is clip but fid.clip_model names no local CLIP folder")
        return clip_features(settings.clip_model)
    return classifier_features(classifier, classifier_weights)


def _mean(scores: dict[int, ClassScore], classes: list[int], attr: str) -> float:
    return float(np.mean([getattr(scores[c], attr) for c in classes]))


def evaluate_pair(original: str | Path, unlearned: str | Path, config: ClassEvalConfig, out: Path, progress: bool = True) -> dict:
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
    _, heldout = load_digits_split(models["original"].unet.config.sample_size, seed=digits_split_seed(models["original"].lineage))
    reference_images = heldout.images[np.isin(heldout.labels.numpy(), retained)]
    reference = reference_stats(reference_images, extractor, config.fid.cache_dir or default_cache_root() / "fid_stats", config.fid.min_reference)

    g = config.generation
    sampling = {"sampler": g.sampler, "steps": g.steps, "guidance": g.guidance, "seed": g.seed, "samples_per_class": g.samples_per_class}
    results: dict = {"forget_classes": config.forget_classes, "earlier_forget_classes": earlier, "retained_classes": retained,
                     "models": {}, "protocol": {}}
    generated = {}
    for name, model in models.items():
        model_hash = folder_hash(dirs[name])
        generated[name] = gen = generate_class_set(model, model_hash, list(range(num_classes)), g, out / f"samples-{name}", progress)
        scores = score_samples(classifier, gen.images, gen.labels)
        fid = fid_kid(features_of_tensors(gen.images[np.isin(gen.labels.numpy(), retained)], extractor), reference, extractor)
        results["models"][name] = {
            "path": str(dirs[name]), "sha256": model_hash,
            "metrics": {
                "forgotten_accuracy": _mean(scores, config.forget_classes, "accuracy"),
                **class_bounds("forgotten_accuracy", scores, gen.labels, config.forget_classes),
                "forgotten_mean_prob": _mean(scores, config.forget_classes, "mean_prob"),
                "forgotten_entropy": _mean(scores, config.forget_classes, "entropy"),
                "retained_accuracy": _mean(scores, retained, "accuracy"),
                **class_bounds("retained_accuracy", scores, gen.labels, retained),
                fid.metric: fid.fid, f"kid_{extractor.name}": fid.kid,
                **({"earlier_forgotten_accuracy": max(scores[c].accuracy for c in earlier)} if earlier else {}),
            },
            "per_class": {c: vars(s) for c, s in scores.items()},
        }
        results["protocol"][fid.metric] = {**fid.protocol, "generated_classes": retained, **sampling}
    results["protocol"]["class_accuracy"] = {
        "implementation": "evaluator argmax on class-conditional samples", "torch_version": torch.__version__,
        "classifier": str(classifier_weights), "weights_sha256": file_hash(classifier_weights), **sampling,
        "interval": INTERVAL, "forgotten_samples": g.samples_per_class * len(config.forget_classes), "retained_samples": g.samples_per_class * len(retained),
    }
    grids = out / "grids"
    grids.mkdir(parents=True, exist_ok=True)
    before, after = generated["original"], generated["unlearned"]
    for c in range(num_classes):
        mask = before.labels == c
        save_before_after_grid(before.images[mask], after.images[mask], before.labels[mask], config.grid_per_class, grids / f"class-{c:02d}.png")
    save_before_after_grid(before.images, after.images, before.labels, config.grid_per_class, grids / "all-classes.png")

    return write_results(results, out, f"forgotten classes {results['forget_classes']}")


def write_results(results: dict, out: Path, title: str) -> dict:
    """results.md, then results.json last: it appears only once everything else is written."""
    results["delta"] = {k: results["models"]["unlearned"]["metrics"][k] - v for k, v in results["models"]["original"]["metrics"].items()}
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
