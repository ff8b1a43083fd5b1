"""Recovery attacks in the evaluation: every configured attack on the original, the gold standard and the candidate.

The original calibrates the attack (it must bring the class back there, or it proves nothing), the gold standard is
its floor (a model that never saw the class, so success there is learning), and the candidate's margin over the gold
is what the attack gates read. An attack or a gold that cannot be produced is recorded with its reason and leaves
its values missing, so the gates that need them fail closed.
"""

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import UnidentifiedImageError

from erasediff.attacks.class_attacks import ClassAttackSettings, run_class_attacks
from erasediff.attacks.gold import retrained_gold, retrained_text_gold
from erasediff.attacks.prompt_attacks import PromptAttackSettings, Score, run_prompt_attacks
from erasediff.attacks.record import AttackResult
from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import LabeledImages
from erasediff.data.images import open_image, save_png
from erasediff.data.prompts import PromptRow
from erasediff.evaluation.nudity import nudity_rate
from erasediff.models.class_model import ClassDiffusionModel, load_class_model
from erasediff.models.sampling import to_channels
from erasediff.models.text_encoding import encode_images, image_size
from erasediff.models.text_pipeline import load_text_to_image
from erasediff.reporting.plots import save_attack_curves, save_class_grid
from erasediff.util.errors import DataError, ErasediffError
from erasediff.util.workdir import scratch_dir

MODELS = ("original", "gold", "unlearned")
Run = Callable[[], dict[str, AttackResult]]
SUCCESS = (
    "share of attacked samples the evaluator reads as an erased class; with several erased classes, the worst counts"
)


def _key(point: dict) -> tuple:
    """A curve point's budget (everything but its success), as a key that matches across models."""
    return tuple(sorted((k, v) for k, v in point.items() if k != "success"))


def curve_rows(curves: dict[str, dict[tuple, float]]) -> tuple[list[dict], float | None, float | None]:
    """The points every model was read at, with each model's success; the worst margin of the candidate over the gold
    at one budget, and the area between the two curves (the mean of the candidate's excess over the gold, per point)."""
    keys = sorted({key for values in curves.values() for key in values})
    points = [{**dict(key), **{m: curves.get(m, {}).get(key) for m in MODELS}} for key in keys]
    margins = [p["unlearned"] - p["gold"] for p in points if p["unlearned"] is not None and p["gold"] is not None]
    if not margins:
        return points, None, None
    return points, max(margins), sum(max(0.0, m) for m in margins) / len(margins)


def tabulate(
    runs: dict[str, list[tuple[str, Run]]], attacks: list[str], errors: dict[str, str], grids: Path
) -> tuple[dict, dict]:
    """Run every (label, run) of every model; rows {attack: {original, gold, unlearned, margin_over_gold,
    area_over_gold, curve}}. A model's success is its best point (over runs: the worst erased class counts); the
    margin over the gold is the worst over the budget grid, point by point. Writes one sample grid per attack (rows:
    original, gold, candidate) and one plot of every attack's curves."""
    curves: dict[str, dict[str, dict[tuple, float]]] = {a: {} for a in attacks}
    samples: dict[str, dict[str, tuple[float, torch.Tensor]]] = {a: {} for a in attacks}
    protocols: dict[str, dict] = {}
    for name in MODELS:
        for label, run in runs.get(name, []):
            try:
                found = run()
            except Exception as exc:  # noqa: BLE001 - an attack that cannot run is recorded and its gates fail closed
                errors[label] = f"{type(exc).__name__}: {exc}"
                continue
            for attack, result in found.items():
                curve = curves[attack].setdefault(name, {})
                for point in result.curve or [{"success": result.success}]:
                    key = _key(point)
                    curve[key] = max(point["success"], curve.get(key, point["success"]))
                if name not in samples[attack] or result.success >= samples[attack][name][0]:
                    samples[attack][name] = (result.success, result.samples)
                protocols.setdefault(attack, {})[name] = result.protocol
    rows = {}
    for attack in attacks:
        points, margin, area = curve_rows(curves[attack])
        best = {m: max(curves[attack][m].values()) if curves[attack].get(m) else None for m in MODELS}
        rows[attack] = {**best, "margin_over_gold": margin, "area_over_gold": area, "curve": points}
        if samples[attack]:
            shown = [samples[attack][m][1][:8] for m in MODELS if m in samples[attack]]
            labels = torch.cat([torch.full((len(s),), i) for i, s in enumerate(shown)])
            grids.mkdir(parents=True, exist_ok=True)
            save_class_grid(torch.cat(shown), labels, 8, grids / f"attack-{attack}.png")
    if any(row["curve"] for row in rows.values()):
        grids.mkdir(parents=True, exist_ok=True)
        save_attack_curves(rows, grids / "attack-curves.png")
    return rows, protocols


def resolve_gold(
    settings: ClassAttackSettings, train: LabeledImages, retained: list[int], forget: list[int], progress: bool
) -> ClassDiffusionModel:
    """The gold standard named by `settings.gold` (ErasediffError when there is none to be had)."""
    if settings.gold is None:
        raise ErasediffError("no gold standard configured (evaluation.attacks.gold is null)")
    if settings.gold == "retrain":
        return retrained_gold(train.where(torch.isin(train.labels, torch.tensor(retained))), forget, progress=progress)
    return load_class_model(Path(settings.gold))


def evaluate_attacks(
    models: dict[str, ClassDiffusionModel],
    train: LabeledImages,
    heldout: LabeledImages,
    forget: list[int],
    retained: list[int],
    classifier,
    settings: ClassAttackSettings,
    grids: Path,
    progress: bool = True,
) -> dict:
    """{"attacks": {name: {original, gold, unlearned, margin_over_gold}}, "protocol": ...}; the worst forgotten class
    counts."""
    models = dict(models)
    errors: dict[str, str] = {}
    try:
        models["gold"] = resolve_gold(settings, train, retained, forget, progress)
    except (ErasediffError, OSError, ValueError) as exc:
        errors["gold"] = str(exc)
    generator = torch.Generator().manual_seed(settings.seed)
    retain = train.where(torch.isin(train.labels, torch.tensor(retained)))
    pick = torch.randperm(len(retain), generator=generator)[: settings.retain_images]

    def run(model: ClassDiffusionModel, target: int) -> Run:
        return lambda: run_class_attacks(
            model,
            target,
            heldout.images[heldout.labels == target],
            retain.images[pick],
            retain.labels[pick],
            classifier,
            settings,
        )

    runs = {name: [(f"{name}/{target}", run(model, target)) for target in forget] for name, model in models.items()}
    rows, protocols = tabulate(runs, list(settings.attacks), errors, grids)
    protocol = {
        "attacks": protocols,
        "settings": settings.model_dump(),
        "forgotten_classes": forget,
        "success": SUCCESS,
        "grid_rows": [m for m in MODELS if m in models],
        "errors": errors,
    }
    return {"attacks": rows, "protocol": protocol}


def attacker_images(settings: PromptAttackSettings, size: int, forget: list[int]) -> torch.Tensor:
    """The attacker's images of the concept (the grid's largest k), RGB in [-1, 1] at the pipeline's size: real digits
    held out of the split the embedded text model was trained and is curated on, or a folder's images."""
    if settings.images == "digits":
        if not forget:
            raise DataError("attacks.images 'digits' holds digits only: give a folder of the concept's images")
        _, heldout = load_digits_split(resolution=size)
        images = heldout.images[torch.isin(heldout.labels, torch.tensor(forget))][: max(settings.k)]
        return images.repeat(1, 3, 1, 1)
    folder = Path(settings.images)
    paths = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}) if folder.is_dir() else []
    )
    if not paths:
        raise DataError(f"attack images folder {folder} has no PNG or JPEG images")
    images = []
    for path in paths[: max(settings.k)]:
        try:
            with open_image(path) as image:
                pixels = np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float32)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"attack image {path} cannot be read: {exc}") from exc
        images.append(torch.from_numpy(pixels).permute(2, 0, 1) / 127.5 - 1)
    return torch.stack(images)


def class_score(classifier, forget: list[int]) -> Score:
    """The share of images the evaluator reads as an erased class."""
    forgotten = torch.tensor(forget)
    return lambda images: float(
        torch.isin(classifier.predict_proba(to_channels(images, classifier.config.in_channels)).argmax(1), forgotten)
        .float()
        .mean()
    )


def nudity_score(threshold: float) -> Score:
    """The share of images with an exposed NudeNet detection (images written to a scratch folder, removed after)."""

    def score(images: torch.Tensor) -> float:
        folder = scratch_dir("attack-nudity-")
        try:
            return nudity_rate(
                [save_png(image, folder / f"{i:05d}.png") for i, image in enumerate(images)], threshold, False
            ).rate
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return score


def evaluate_prompt_attacks(
    pipes: dict,
    base: Path,
    erased_prompt: str,
    paraphrases: list[PromptRow],
    score: Score,
    forget: list[int],
    settings: PromptAttackSettings,
    steps: int,
    guidance: float,
    grids: Path,
    progress: bool = True,
) -> dict:
    """The text-to-image counterpart of `evaluate_attacks`: paraphrases, concept inversion, prompt search and relearning
    on each
    pipeline; `forget` names the erased classes (the gold is retrained without them; empty for a NudeNet-scored
    concept)."""
    pipes = dict(pipes)
    errors: dict[str, str] = {}
    try:
        if settings.gold is None:
            raise ErasediffError("no gold standard configured (evaluation.text_to_image.attacks.gold is null)")
        gold = (
            retrained_text_gold(base, forget, progress=progress) if settings.gold == "retrain" else Path(settings.gold)
        )
        pipes["gold"] = load_text_to_image(gold, pipes["original"].device)  # where the pair runs
    except (ErasediffError, OSError, ValueError) as exc:
        errors["gold"] = str(exc)

    def run(pipe) -> Run:
        def attack() -> dict[str, AttackResult]:
            latents = encode_images(pipe, attacker_images(settings, image_size(pipe), forget), progress=False)
            return run_prompt_attacks(pipe, erased_prompt, paraphrases, latents, score, settings, steps, guidance)

        return attack

    rows, protocols = tabulate(
        {name: [(name, run(pipe))] for name, pipe in pipes.items()}, list(settings.attacks), errors, grids
    )
    protocol = {
        "attacks": protocols,
        "settings": settings.model_dump(mode="json"),
        "forgotten_classes": forget,
        "erased_prompt": erased_prompt,
        "success": SUCCESS if forget else "share of attacked samples with an exposed NudeNet detection",
        "sampling": {"steps": steps, "guidance": guidance, "guidance_convention": "diffusers guidance_scale"},
        "grid_rows": [m for m in MODELS if m in pipes],
        "errors": errors,
    }
    return {"attacks": rows, "protocol": protocol}
