"""Text-to-image pairs side by side: NudeNet rate on I2P-format prompts, CLIP score and FID on captions,
and forgotten/retained class accuracy on class prompts read by a classifier.

Both pipelines render every prompt row from the row's own seed and guidance, so image i of the
original and image i of the unlearned model differ only by the weights.
"""

from dataclasses import replace
from pathlib import Path

import torch

from erasediff.attacks.prompt_attacks import load_paraphrases
from erasediff.comparison.attacks import class_score, evaluate_prompt_attacks, nudity_score
from erasediff.comparison.class_models import build_extractor, neighbour_metrics, real_digits_stats, write_results
from erasediff.comparison.eval_config import ClassPromptSettings, PromptEvalConfig
from erasediff.data.prompts import PromptRow, load_prompt_csv
from erasediff.defaults.resolve import resolve_classifier
from erasediff.evaluation.class_accuracy import mean_accuracy, score_samples
from erasediff.evaluation.clip_score import clip_score
from erasediff.evaluation.features import FeatureExtractor, classifier_features
from erasediff.evaluation.fid import (
    FidResult,
    ReferenceStats,
    features_of_tensors,
    fid_kid,
    kid_between,
    reference_stats_from_folder,
)
from erasediff.evaluation.generation import GeneratedSet, generate_prompt_set
from erasediff.evaluation.intervals import INTERVAL, bounds, class_bounds
from erasediff.evaluation.metric_settings import GUIDANCE_CONVENTIONS
from erasediff.evaluation.nudity import nudity_rate
from erasediff.evaluation.sharpness import sharpness_change
from erasediff.models.sampling import to_channels
from erasediff.models.text_pipeline import load_text_to_image
from erasediff.reporting.plots import save_before_after_grid
from erasediff.util.cache import default_cache_root
from erasediff.util.device import resolve_device
from erasediff.util.errors import DataError
from erasediff.util.hashing import file_hash, folder_hash

NAMES = ("original", "unlearned")
DRIFT = (
    "KID between the unlearned and the original model's samples of the retained-class prompts (same prompts, same "
    "seeds): "
    "how far the erasure moved what it must keep. Noise or blur can bring samples closer to the blurry upsampled real "
    "digits "
    "(KID against real data falls); against the original's own samples they cannot"
)
SHARPNESS = (
    "mean variance of the Laplacian of the unlearned model's samples over the original's, minus 1 "
    "(erasediff/evaluation/sharpness.py)"
)


def _grid(sets: dict[str, GeneratedSet], count: int, path: Path) -> None:
    """One row per prompt: original on the left, unlearned on the right."""
    n = min(count, len(sets["original"].images))
    save_before_after_grid(sets["original"].images[:n], sets["unlearned"].images[:n], torch.arange(n), 1, path)


def class_labels(rows: list[PromptRow], settings: ClassPromptSettings) -> torch.Tensor:
    """Each prompt's class; every forgotten class must have prompts, or its accuracy would be silently missing."""
    if any(r.label is None for r in rows):
        raise DataError(f"prompt file {settings.prompts} needs a class value on every row for evaluation.classes")
    labels = torch.tensor([r.label for r in rows])
    absent = [c for c in settings.forget_classes if c not in labels.tolist()]
    if absent:
        raise DataError(f"prompt file {settings.prompts} has no prompts of forgotten class {absent[0]}")
    return labels


def digits_reference(
    settings: ClassPromptSettings, labels: torch.Tensor, classifier, weights: Path
) -> tuple[FeatureExtractor, ReferenceStats]:
    """The evaluator's features and the statistics of every real digits image of the retained classes."""
    extractor = classifier_features(classifier, weights)
    retained = [c for c in labels.unique().tolist() if c not in settings.forget_classes]
    return extractor, real_digits_stats(classifier.config.resolution, 0, retained, False, extractor, settings.fid)


def measure_prompt_classes(
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier,
    forget: list[int],
    reference: tuple[FeatureExtractor, ReferenceStats] | None,
    neighbours: list[int] = (),
    original: torch.Tensor | None = None,
) -> tuple[dict, dict, FidResult | None]:
    """One pipeline's class-prompt samples: forgotten/retained accuracy with bounds, FID/KID of the retained when a
    reference is set,
    and with `original` (the original's samples of the same rows), the drift from it and the change of sharpness."""
    scores = score_samples(classifier, to_channels(images, classifier.config.in_channels), labels)
    retained = [c for c in scores if c not in forget]
    metrics = {
        "forgotten_accuracy": mean_accuracy(scores, forget),
        **class_bounds("forgotten_accuracy", scores, labels, forget),
        "retained_accuracy": mean_accuracy(scores, retained) if retained else float("nan"),
    }
    if retained:
        metrics.update(class_bounds("retained_accuracy", scores, labels, retained))
    metrics.update(neighbour_metrics(scores, labels, [c for c in neighbours if c in scores]))
    fid = None
    kept = torch.isin(labels, torch.tensor(retained, dtype=labels.dtype))
    if original is not None and retained:
        metrics["sharpness_change_classes"] = sharpness_change(images[kept], original[kept])
    if reference is not None and retained:
        extractor, stats = reference
        features = features_of_tensors(images[kept], extractor)
        fid = fid_kid(features, stats, extractor)
        metrics.update(fid.metrics())
        if original is not None:
            metrics[f"drift_kid_{extractor.name}"] = kid_between(
                features, features_of_tensors(original[kept], extractor), stats
            )
    return metrics, {c: vars(s) for c, s in scores.items()}, fid


def run_attacks(
    config: PromptEvalConfig, pipes: dict, base: Path, prompts: dict[str, list[PromptRow]], grids: Path, progress: bool
) -> tuple[dict, dict]:
    """The recovery attacks, scored by the classes evaluator when the evaluation has one, else by NudeNet."""
    a = config.attacks
    if config.classes is not None:
        forget = config.classes.forget_classes
        score = class_score(resolve_classifier(config.classes.classifier)[0], forget)
        erased = a.search_prompt or next(r.prompt for r in prompts["classes"] if r.label in forget)
        paraphrases = load_paraphrases(a, forget)
    else:
        forget, score = [], nudity_score(config.nudity.threshold)
        erased, paraphrases = (
            a.search_prompt or prompts["nudity"][0].prompt,
            load_paraphrases(a, None) if "paraphrase" in a.attacks else [],
        )
    attacked = evaluate_prompt_attacks(
        pipes, base, erased, paraphrases, score, forget, a, config.steps, config.guidance, grids, progress
    )
    return attacked["attacks"], attacked["protocol"]


def evaluate_prompt_pair(
    original: str | Path, unlearned: str | Path, config: PromptEvalConfig, out: Path, progress: bool = True
) -> dict:
    out = Path(out)
    dirs = {"original": Path(original), "unlearned": Path(unlearned)}
    device = resolve_device(config.device)
    pipes = {name: load_text_to_image(d, device) for name, d in dirs.items()}
    hashes = {name: folder_hash(d) for name, d in dirs.items()}
    sections = {
        k: v
        for k, v in (("nudity", config.nudity), ("captions", config.captions), ("classes", config.classes))
        if v is not None
    }
    prompts = {key: load_prompt_csv(s.prompts, s.limit) for key, s in sections.items()}  # fail early on a bad CSV
    if (
        config.nudity is not None and config.nudity.guidance is not None
    ):  # the reference I2P protocol: one guidance for every prompt
        prompts["nudity"] = [replace(r, guidance=config.nudity.guidance) for r in prompts["nudity"]]
    if config.classes is not None:
        classifier, classifier_weights = resolve_classifier(config.classes.classifier)
        labels = class_labels(prompts["classes"], config.classes)
        measures_retained = bool(
            set(labels.tolist()) - set(config.classes.forget_classes)
        )  # a recorded check holds the forgotten rows only
        class_reference = (
            digits_reference(config.classes, labels, classifier, classifier_weights)
            if config.classes.reference and measures_retained
            else None
        )
    extractor = reference = None
    if config.captions is not None and config.captions.reference_dir is not None:
        fid_settings = config.captions.fid
        if (
            fid_settings.features == "clip" and fid_settings.clip_model is None
        ):  # default: the CLIP that scores the captions
            fid_settings = fid_settings.model_copy(update={"clip_model": config.captions.clip_model})
        extractor = build_extractor(fid_settings)
        reference = reference_stats_from_folder(
            config.captions.reference_dir,
            extractor,
            fid_settings.cache_dir or default_cache_root() / "fid_stats",
            fid_settings.min_reference,
        )

    metrics: dict[str, dict[str, float]] = {name: {} for name in NAMES}
    per_class: dict[str, dict] = {name: {} for name in NAMES}
    protocol: dict[str, dict] = {}
    sampling = {
        "steps": config.steps,
        "default_guidance": config.guidance,
        "seeds": "per prompt row (evaluation_seed)",
        "guidance_convention": GUIDANCE_CONVENTIONS["diffusers"] + ", as Stable Diffusion's reference scripts use it",
    }
    (out / "grids").mkdir(parents=True, exist_ok=True)
    for key, rows in prompts.items():
        sets = {
            name: generate_prompt_set(
                pipes[name],
                hashes[name],
                rows,
                config.steps,
                config.guidance,
                out / f"samples-{key}-{name}",
                config.batch_size,
                config.size,
                progress,
            )
            for name in NAMES
        }
        _grid(sets, config.grid_prompts, out / "grids" / f"{key}.png")
        for name, generated in sets.items():
            if key == "nudity":
                result = nudity_rate(generated.paths(), config.nudity.threshold, progress)
                metrics[name]["nudity_rate"] = result.rate
                metrics[name].update(bounds("nudity_rate", result.images_with_exposed, result.images))
                metrics[name].update(
                    {f"nudenet_{label.lower()}": float(n) for label, n in result.regions_per_label.items()}
                )
                protocol["nudity"] = {
                    **result.protocol,
                    "prompts": str(config.nudity.prompts),
                    **sampling,
                    "interval": INTERVAL,
                    "guidance": f"{config.nudity.guidance} for every prompt (the reference I2P protocol)"
                    if config.nudity.guidance is not None
                    else "each row's evaluation_guidance",
                }
            elif key == "classes":
                measured, per_class[name], fid = measure_prompt_classes(
                    generated.images,
                    labels,
                    classifier,
                    config.classes.forget_classes,
                    class_reference,
                    config.classes.neighbours,
                    sets["original"].images if name == "unlearned" else None,
                )
                metrics[name].update(measured)
                if fid is not None:
                    protocol[fid.metric] = {
                        **fid.protocol,
                        "reference": "every real digits image of the retained classes",
                        **sampling,
                    }
                    protocol["drift"] = {
                        "metric": "drift_" + fid.metric.replace("fid_", "kid_"),
                        "what": DRIFT,
                        "features": fid.protocol["features"],
                        "kid_seed": fid.protocol["kid_seed"],
                    }
                protocol["class_accuracy"] = {
                    "implementation": "evaluator argmax on prompt samples",
                    "classifier": str(classifier_weights),
                    "weights_sha256": file_hash(classifier_weights),
                    "prompts": str(config.classes.prompts),
                    "forget_classes": config.classes.forget_classes,
                    **sampling,
                    "interval": INTERVAL,
                }
            else:
                if name == "unlearned":
                    metrics[name]["sharpness_change_captions"] = sharpness_change(
                        generated.images, sets["original"].images
                    )
                score = clip_score(generated.images, [r.prompt for r in rows], config.captions.clip_model)
                metrics[name]["clip_score"] = score.mean
                protocol["clip_score"] = {**score.protocol, "prompts": str(config.captions.prompts), **sampling}
                if reference is not None:
                    fid = fid_kid(features_of_tensors(generated.images, extractor), reference, extractor)
                    metrics[name].update(fid.metrics())
                    protocol[fid.metric] = {**fid.protocol, **sampling}
    if "captions" in prompts or "classes" in prompts:
        protocol["sharpness"] = {
            "what": SHARPNESS,
            "rows": "the retained-class prompts (sharpness_change_classes) and the caption prompts "
            "(sharpness_change_captions), each against the original's samples of the same rows",
        }
    results = {
        "models": {
            name: {
                "path": str(dirs[name]),
                "sha256": hashes[name],
                "metrics": metrics[name],
                "per_class": per_class[name],
            }
            for name in NAMES
        },
        "protocol": protocol,
    }
    if config.attacks is not None:
        results["attacks"], results["protocol"]["attacks"] = run_attacks(
            config, pipes, dirs["original"], prompts, out / "grids", progress
        )
    return write_results(results, out, "text-to-image evaluation")
