"""Recovery attacks in the evaluation: every configured attack on the original, the gold standard and the candidate.

The original calibrates the attack (it must bring the class back there, or it proves nothing), the gold standard is
its floor (a model that never saw the class, so success there is learning), and the candidate's margin over the gold
is what the attack gates read. An attack or a gold that cannot be produced is recorded with its reason and leaves
its values missing, so the gates that need them fail closed.
"""

from pathlib import Path

import torch

from erasediff.attacks.class_attacks import ClassAttackSettings, run_class_attacks
from erasediff.attacks.gold import retrained_gold
from erasediff.data.image_sets import LabeledImages
from erasediff.models.class_model import ClassDiffusionModel, load_class_model
from erasediff.reporting.plots import save_class_grid
from erasediff.util.errors import ErasediffError

MODELS = ("original", "gold", "unlearned")


def resolve_gold(settings: ClassAttackSettings, train: LabeledImages, retained: list[int], forget: list[int], progress: bool) -> ClassDiffusionModel:
    """The gold standard named by `settings.gold` (ErasediffError when there is none to be had)."""
    if settings.gold is None:
        raise ErasediffError("no gold standard configured (evaluation.attacks.gold is null)")
    if settings.gold == "retrain":
        return retrained_gold(train.where(torch.isin(train.labels, torch.tensor(retained))), forget, progress=progress)
    return load_class_model(Path(settings.gold))


def evaluate_attacks(models: dict[str, ClassDiffusionModel], train: LabeledImages, heldout: LabeledImages, forget: list[int], retained: list[int],
                     classifier, settings: ClassAttackSettings, grids: Path, progress: bool = True) -> dict:
    """{"attacks": {name: {original, gold, unlearned, margin_over_gold, errors}}, "protocol": ...}; the worst forgotten class counts."""
    models = dict(models)
    errors: dict[str, str] = {}
    try:
        models["gold"] = resolve_gold(settings, train, retained, forget, progress)
    except (ErasediffError, OSError, ValueError) as exc:
        errors["gold"] = str(exc)
    generator = torch.Generator().manual_seed(settings.seed)
    retain = train.where(torch.isin(train.labels, torch.tensor(retained)))
    pick = torch.randperm(len(retain), generator=generator)[: settings.retain_images]
    success: dict[str, dict[str, float | None]] = {a: dict.fromkeys(MODELS) for a in settings.attacks}
    samples: dict[str, dict[str, torch.Tensor]] = {a: {} for a in settings.attacks}
    protocols: dict[str, dict] = {}
    for name in MODELS:
        if name not in models:
            continue
        for target in forget:
            try:
                found = run_class_attacks(models[name], target, heldout.images[heldout.labels == target], retain.images[pick], retain.labels[pick],
                                          classifier, settings)
            except Exception as exc:  # noqa: BLE001 - an attack that cannot run is recorded and its gates fail closed
                errors[f"{name}/{target}"] = f"{type(exc).__name__}: {exc}"
                continue
            for attack, result in found.items():
                if success[attack][name] is None or result.success >= success[attack][name]:
                    success[attack][name], samples[attack][name] = result.success, result.samples
                protocols[attack] = result.protocol
    rows = {}
    for attack, values in success.items():
        margin = values["unlearned"] - values["gold"] if values["unlearned"] is not None and values["gold"] is not None else None
        rows[attack] = {**values, "margin_over_gold": margin}
        if samples[attack]:
            shown = [samples[attack][m][:8] for m in MODELS if m in samples[attack]]
            labels = torch.cat([torch.full((len(s),), i) for i, s in enumerate(shown)])
            grids.mkdir(parents=True, exist_ok=True)
            save_class_grid(torch.cat(shown), labels, 8, grids / f"attack-{attack}.png")
    protocol = {"attacks": protocols, "settings": settings.model_dump(), "forgotten_classes": forget,
                "success": "share of attacked samples the evaluator reads as the erased class; the worst erased class counts",
                "grid_rows": [m for m in MODELS if m in models], "errors": errors}
    return {"attacks": rows, "protocol": protocol}
