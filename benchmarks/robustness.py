"""Recovery attacks calibrated on three models: the original, the gold standard retrained without the class, the candidate.

For the default digits request (forget 3): every class attack (`erasediff/attacks/class_attacks.py`) runs with 3 seeds
on the original (the attack must work: at least 90 %), on the gold standard retrained on the retain set only (its floor:
what the attack achieves by learning, on a model that never saw a 3) and on the candidates of each method, erased with
the request's own budget and seeds 0, 1, 2. The margin over gold is what a gate should read.

    .venv/bin/python benchmarks/robustness.py                  # EraseDiff (about 10 minutes on 2 cores; the first run trains the gold)
    .venv/bin/python benchmarks/robustness.py --all-methods    # and the trade-off benchmark's baselines
    .venv/bin/python benchmarks/robustness.py --readme         # and put the table and plot into README.md
"""

import argparse
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from erasediff.util.offline import go_offline  # noqa: E402

go_offline()

from readme_section import link, publish  # noqa: E402
from request_tasks import DigitsRequest  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from tradeoff import METHODS  # noqa: E402

from erasediff.attacks.class_attacks import ClassAttackSettings, run_class_attacks  # noqa: E402
from erasediff.attacks.gold import retrained_gold  # noqa: E402
from erasediff.data.digits import load_digits_split  # noqa: E402
from erasediff.defaults.digits_models import digits_split_seed  # noqa: E402
from erasediff.method.robust import RelearnSettings  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SEEDS = (0, 1, 2)
PAPER = {**METHODS["erasediff"], "relearn": None}
VARIANTS = {  # row name -> UnlearnSettings overrides of the request's own settings (which turn the relearning term on)
    "erasediff (paper)": PAPER,
    "erasediff + relearn (default)": {**PAPER, "relearn": RelearnSettings().model_dump()},
    **{m: {**over, "relearn": None} for m, over in METHODS.items() if not m.startswith("erasediff")},
}


def attack_all(task, model, settings: ClassAttackSettings, held: torch.Tensor, seed: int) -> dict[str, float]:
    retain_pick = torch.randperm(len(task.retain), generator=torch.Generator().manual_seed(seed))[: settings.retain_images]
    results = run_class_attacks(model, task.forget_classes[0], held, task.retain.images[retain_pick], task.retain.labels[retain_pick],
                                task.classifier, settings.model_copy(update={"seed": seed}))
    return {name: r.success for name, r in results.items()}


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all-methods", action="store_true")
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.time()
    task, settings = DigitsRequest(), ClassAttackSettings()
    _, heldout = load_digits_split(task.model.unet.config.sample_size, seed=digits_split_seed(task.model.lineage))
    held = heldout.images[heldout.labels == task.forget_classes[0]]
    gold_started = time.time()
    gold = retrained_gold(task.retain, task.forget_classes)
    gold_seconds = time.time() - gold_started
    methods = {name: over for name, over in VARIANTS.items() if args.all_methods or name.startswith("erasediff")}
    rows: dict[str, list[dict[str, float]]] = {"original": [], "gold (retrained)": []}
    for seed in tqdm(SEEDS, desc="seeds"):
        rows["original"].append(attack_all(task, task.model, settings, held, seed))
        rows["gold (retrained)"].append(attack_all(task, gold, settings, held, seed))
        for method in methods:
            t = time.time()
            unet = task.unlearn(seed, **methods[method])
            seconds = time.time() - t
            metrics = task.measure(*task.sample(unet))
            candidate = type(task.model)(unet, task.model.scheduler, task.model.class_names, task.model.lineage)
            rows.setdefault(method, []).append({"no attack": metrics["forgotten_accuracy"], **attack_all(task, candidate, settings, held, seed),
                                                **utility(task, metrics), "erasure_s": seconds})
    attacks = list(settings.attacks)
    lines = table(rows, attacks)
    budget = (f"k = {settings.k} held-out 3s; inversion {settings.inversion_steps} steps at lr {settings.inversion_lr}; relearning "
              f"{settings.relearn_steps} steps at lr {settings.relearn_lr}, batch {settings.batch_size} (retain: {settings.retain_images} retain images); "
              f"sweep w in {settings.sweep}; {settings.samples} attacked samples each, w = {settings.guidance} (reference convention)")
    figure = plot(rows, attacks, args.out / "robustness.png")
    report = "\n".join([
        "Attack success (share of attacked samples the evaluator reads as a 3), mean ± sd over seeds 0, 1, 2 "
        "(attack seeds; candidates erased with the same seeds).", "", *lines, "",
        f"Budget: {budget}. Gold: the base recipe retrained on the retain set only ({gold_seconds:.0f} s this run, 0 when cached); "
        + f"measured in {time.time() - started:.0f} s on {torch.get_num_threads()} threads.", "", f"![attack success]({link(figure)})"])
    publish(args.out, "robustness", report, rows, "robustness" if args.readme else None)


def utility(task: DigitsRequest, metrics: dict[str, float]) -> dict[str, float]:
    """What issue 20's targets read besides the attacks: retained and neighbour accuracy against the original, the FID/KID gates."""
    o = task.original_metrics
    gates = {g.gate: g.passed for g in task.gates(metrics).gates}
    return {"retained_drop": o["retained_accuracy"] - metrics["retained_accuracy"], "neighbour_drop": o["neighbour_accuracy"] - metrics["neighbour_accuracy"],
            "fid_kid_pass": float(gates["fid_increase_max"] and gates["kid_increase_max"])}


def table(rows: dict[str, list[dict[str, float]]], attacks: list[str]) -> list[str]:
    """Mean ± sd per attack, the worst margin over the gold's mean, and for candidates the utility targets and time."""
    gold_mean = {a: statistics.mean(r[a] for r in rows["gold (retrained)"]) for a in attacks}
    plain = statistics.mean(r["erasure_s"] for r in rows["erasediff (paper)"])
    lines = ["| model | no attack | " + " | ".join(attacks) + " | worst margin over gold | retained drop | neighbour drop | FID and KID gates pass | erasure s (x paper) |",
             "|---|" + "---:|" * (len(attacks) + 6)]
    for model, runs in rows.items():
        margin = max(statistics.mean(r[a] for r in runs) - gold_mean[a] for a in attacks)
        cells = [spread([r[a] for r in runs]) if a in runs[0] else "-" for a in ["no attack", *attacks]]
        extra = ["-"] * 4
        if "erasure_s" in runs[0]:
            seconds = statistics.mean(r["erasure_s"] for r in runs)
            extra = [spread([r["retained_drop"] for r in runs]), spread([r["neighbour_drop"] for r in runs]),
                     f"{sum(r['fid_kid_pass'] for r in runs):.0f}/{len(runs)}", f"{seconds:.0f} ({seconds / plain:.1f}x)"]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {margin:+.2f} | " + " | ".join(extra) + " |")
    return lines


def plot(rows: dict[str, list[dict[str, float]]], attacks: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(rows)
    for i, (model, runs) in enumerate(rows.items()):
        means = [statistics.mean(r[a] for r in runs) for a in attacks]
        errs = [statistics.stdev(r[a] for r in runs) if len(runs) > 1 else 0 for a in attacks]
        ax.bar([j + i * width for j in range(len(attacks))], means, width, yerr=errs, label=model, capsize=2)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(attacks))], attacks)
    ax.set_ylabel("attack success")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
