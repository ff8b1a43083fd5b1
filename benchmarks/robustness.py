"""Recovery attacks calibrated on three models: the original, the gold standard retrained without the erased data, the
candidate.

Two tasks, each the shipped request's own attacks and budgets:
* `digits` (configs/request_digits_forget_3.yaml): the class attacks (`erasediff/attacks/class_attacks.py`);
* `text` (configs/request_text_digits_forget_seven.yaml): the text-to-image attacks
(`erasediff/attacks/prompt_attacks.py`).
Every attack runs with 3 seeds on the original (the attack must work: at least 90 %), on the gold standard (its floor:
what the attack achieves by learning, on a model that never saw the class) and on the candidates of each method,
erased with the request's own budget and seeds 0, 1, 2. The margin over gold is what a gate should read.

    .venv/bin/python benchmarks/robustness.py                          # digits, EraseDiff (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/robustness.py --task text              # the tiny text model, "seven"
    .venv/bin/python benchmarks/robustness.py --all-methods --publish   # and the trade-off benchmark's baselines, into
    docs/results/robustness.md
    .venv/bin/python benchmarks/robustness.py --task text --adapter 4  # EraseDiff with full weights against a rank-4
    LoRA (adapter erasure)
"""

import argparse
import copy
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from erasediff.util.offline import go_offline  # noqa: E402

go_offline()

from request_tasks import DigitsRequest, TextRequest  # noqa: E402
from results_page import link, publish  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from tradeoff import METHODS  # noqa: E402

from erasediff.attacks.class_attacks import ClassAttackSettings, run_class_attacks  # noqa: E402
from erasediff.attacks.prompt_attacks import load_paraphrases, run_prompt_attacks  # noqa: E402
from erasediff.comparison.attacks import attacker_images, class_score  # noqa: E402
from erasediff.data.digits import DIGIT_NAMES, load_digits_split  # noqa: E402
from erasediff.defaults.digits_models import digits_split_seed  # noqa: E402
from erasediff.method.robust.relearn import RelearnSettings  # noqa: E402
from erasediff.method.unlearning_settings import PAPER_PLAIN  # noqa: E402
from erasediff.models.text_encoding import encode_images, image_size  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SEEDS = (0, 1, 2)
PAPER = {**METHODS["erasediff"], **PAPER_PLAIN}
RELEARN = RelearnSettings().model_dump()
RETAIN_ROWS = 0.5  # forget_on_retain of the digits request's robust default
ANCHOR = 3.0  # the anchored retain loss at the weight its KID screen chose (docs/method.md)
ROBUST = {
    **PAPER,
    "relearn": {**RELEARN, "weight": 6.0},
    "forget_on_retain": RETAIN_ROWS,
    "retain_anchor": ANCHOR,
}  # the relearning term twice as heavy
# row name -> UnlearnSettings overrides of the request's own settings; the row the request runs is marked (default)
VARIANTS = {
    "erasediff (paper)": PAPER,
    "erasediff + relearn": {**PAPER, "relearn": RELEARN},
    "erasediff + relearn + retain rows": {**PAPER, "relearn": RELEARN, "forget_on_retain": RETAIN_ROWS},
    "erasediff + relearn + retain rows + anchor": {
        **PAPER,
        "relearn": RELEARN,
        "forget_on_retain": RETAIN_ROWS,
        "retain_anchor": ANCHOR,
    },
    "erasediff + relearn x2 + retain rows + anchor": ROBUST,
    "erasediff + relearn x2 + retain rows + anchor + null row": {**ROBUST, "forget_row": "null"},
    **{m: {**over, **PAPER_PLAIN} for m, over in METHODS.items() if not m.startswith("erasediff")},
    # robust baselines: the relearning term where a method has a forget term, retain rows where it remaps (SalUn),
    # the anchor where it has a retain loss (all but ESD), the null row on class models (every method)
    "neggrad+ + relearn + anchor + null row": {
        **METHODS["neggrad+"],
        **PAPER_PLAIN,
        "relearn": RELEARN,
        "retain_anchor": ANCHOR,
        "forget_row": "null",
    },
    "salun + relearn + retain rows + anchor + null row": {
        **METHODS["salun"],
        **PAPER_PLAIN,
        "relearn": RELEARN,
        "forget_on_retain": RETAIN_ROWS,
        "retain_anchor": ANCHOR,
        "forget_row": "null",
    },
    "esd + relearn + null row": {**METHODS["esd"], **PAPER_PLAIN, "relearn": RELEARN, "forget_row": "null"},
}


def variants_for(task: str) -> dict[str, dict]:
    """VARIANTS as `task` can run them: a text-to-image pipeline has no class rows, so its rows go without the null row
    (and repeats go)."""
    if task == "digits":
        return VARIANTS
    return {
        name.replace(" + null row", ""): {k: v for k, v in over.items() if k != "forget_row"}
        for name, over in VARIANTS.items()
    }


class DigitsAttacks:
    """The digits request's class attacks on a class-conditional model."""

    what = "a 3"

    def __init__(self) -> None:
        self.task, self.settings = DigitsRequest(), ClassAttackSettings()
        self.model = self.task.model
        _, heldout = load_digits_split(
            self.task.model.unet.config.sample_size, seed=digits_split_seed(self.task.model.lineage)
        )
        self.held = heldout.images[heldout.labels == self.task.forget_classes[0]]
        started = time.time()
        self.gold = self.task.gold()
        self.gold_seconds = time.time() - started

    def candidate(self, unet: torch.nn.Module):
        model = self.task.model
        return type(model)(unet, model.scheduler, model.class_names, model.lineage)

    def attack(self, model, seed: int) -> dict[str, float]:
        task, settings = self.task, self.settings
        retain_pick = torch.randperm(len(task.retain), generator=torch.Generator().manual_seed(seed))[
            : settings.retain_images
        ]
        results = run_class_attacks(
            model,
            task.forget_classes[0],
            self.held,
            task.retain.images[retain_pick],
            task.retain.labels[retain_pick],
            task.classifier,
            settings.model_copy(update={"seed": seed}),
        )
        return {name: r.success for name, r in results.items()}

    def budget(self) -> str:
        s = self.settings
        return (
            f"k = {s.k} held-out 3s; inversion {s.inversion_steps} steps at lr {s.inversion_lr}; relearning "
            f"{s.relearn_steps} steps at lr "
            f"{s.relearn_lr}, batch {s.batch_size} (retain: {s.retain_images} retain images); sweep w in {s.sweep}; "
            f"{s.samples} attacked "
            f"samples each, w = {s.guidance} (reference convention)"
        )


class TextAttacks:
    """The seven request's text-to-image attacks on a pipeline (or the same request's for another `digit`)."""

    def __init__(self, digit: int = 7) -> None:
        self.task = TextRequest(digit)
        self.what = f"a {DIGIT_NAMES[digit]}"
        self.settings = self.task.t.attacks
        self.model = self.task.pipe
        self.paraphrases = load_paraphrases(self.settings, self.task.forget_classes)
        self.erased = self.task.request.target.prompts[0]
        started = time.time()
        self.gold = self.task.gold()
        self.gold_seconds = time.time() - started

    def candidate(self, unet: torch.nn.Module):
        pipe = copy.copy(self.task.pipe)
        pipe.unet = unet
        return pipe

    def attack(self, pipe, seed: int) -> dict[str, float]:
        return {name: r.success for name, r in self.results(pipe, seed).items()}

    def results(self, pipe, seed: int) -> dict:
        """Every attack's result (AttackResult: its best reading and its curve over the budget grid)."""
        score = class_score(self.task.classifier, self.task.forget_classes)
        settings = self.settings.model_copy(update={"seed": seed})
        latents = encode_images(
            pipe, attacker_images(settings, image_size(pipe), self.task.forget_classes), progress=False
        )
        return run_prompt_attacks(
            pipe, self.erased, self.paraphrases, latents, score, settings, self.task.t.steps, self.task.t.guidance
        )

    def budget(self) -> str:
        s = self.settings
        return (
            f"{len(self.paraphrases)} held-out paraphrase samples; k = {s.k} held-out real images of {self.what}; "
            "inversion "
            f"{s.inversion_steps} steps at lr "
            f"{s.inversion_lr} in '{s.inversion_template}'; prompt search: {s.search_tokens} tokens before "
            f"'{self.erased}', {s.search_steps} "
            f"steps, {s.search_candidates} candidates; relearning {s.relearn_steps} steps at lr {s.relearn_lr}; "
            f"{s.samples} attacked samples "
            f"each, guidance {self.task.t.guidance} (diffusers)"
        )


ATTACKERS = {"digits": DigitsAttacks, "text": TextAttacks}


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(ATTACKERS), default="digits")
    parser.add_argument("--all-methods", action="store_true")
    parser.add_argument(
        "--adapter",
        type=int,
        metavar="RANK",
        help="add the default erasure as a LoRA of this rank (unlearning.adapter) "
        "and its learning rate times --adapter-lr-scale; the results go to a file of their own "
        "(robustness-TASK-adapter)",
    )
    parser.add_argument("--adapter-lr-scale", type=float, default=1.0)
    parser.add_argument("--publish", action="store_true", help="write docs/results/<stem>.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.time()
    attacker = ATTACKERS[args.task]()
    task = attacker.task
    methods = {
        name: over for name, over in variants_for(args.task).items() if args.all_methods or name.startswith("erasediff")
    }
    methods = {
        name + (" (default)" if task.settings(0, **over) == task.settings(0) else ""): over
        for name, over in methods.items()
    }
    if args.adapter:
        lr = task.request.unlearning.lr * args.adapter_lr_scale
        methods[f"erasediff + relearn, LoRA r={args.adapter} (lr {lr:g})"] = {
            **methods["erasediff + relearn"],
            "adapter": {"rank": args.adapter},
            "lr": lr,
        }
    rows: dict[str, list[dict[str, float]]] = {"original": [], "gold (retrained)": []}
    for seed in tqdm(SEEDS, desc="seeds"):
        rows["original"].append(attacker.attack(attacker.model, seed))
        rows["gold (retrained)"].append(attacker.attack(attacker.gold, seed))
        for method in methods:
            t = time.time()
            unet = task.unlearn(seed, **methods[method])
            seconds = time.time() - t
            metrics = task.measure(*task.sample(unet))
            rows.setdefault(method, []).append(
                {
                    "no attack": metrics["forgotten_accuracy"],
                    **attacker.attack(attacker.candidate(unet), seed),
                    **utility(task, metrics),
                    "erasure_s": seconds,
                }
            )
    attacks = list(attacker.settings.attacks)
    lines = table(rows, attacks)
    stem = ("robustness" if args.task == "digits" else f"robustness-{args.task}") + ("-adapter" if args.adapter else "")
    figure = plot(rows, attacks, args.out / f"{stem}.png")
    report = "\n".join(
        [
            f"Attack success (share of attacked samples the evaluator reads as {attacker.what}), mean ± sd over seeds "
            "0, 1, 2 "
            "(attack seeds; candidates erased with the same seeds).",
            "",
            *lines,
            "",
            f"Budget: {attacker.budget()}. Gold: the base recipe retrained on the retain set only "
            f"({attacker.gold_seconds:.0f} s this run, 0 when "
            f"cached or shipped); measured in {time.time() - started:.0f} s on {torch.get_num_threads()} threads.",
            "",
            f"![attack success]({link(figure)})",
        ]
    )
    publish(args.out, stem, report, rows, stem if args.publish and not args.adapter else None, f"Robustness: {stem}")


def utility(task: DigitsRequest | TextRequest, metrics: dict[str, float]) -> dict[str, float]:
    """What issue 20's targets read besides the attacks: retained and neighbour accuracy against the original, the
    FID/KID gates."""
    o = task.original_metrics
    gates = {g.gate: g.passed for g in task.gates(metrics).gates}
    return {
        "retained_drop": o["retained_accuracy"] - metrics["retained_accuracy"],
        "neighbour_drop": o["neighbour_accuracy"] - metrics["neighbour_accuracy"],
        "fid_kid_pass": float(gates["fid_increase_max"] and gates["kid_increase_max"]),
    }


def table(rows: dict[str, list[dict[str, float]]], attacks: list[str]) -> list[str]:
    """Mean ± sd per attack, the worst margin over the gold's mean, and for candidates the utility targets and time."""
    gold_mean = {a: statistics.mean(r[a] for r in rows["gold (retrained)"]) for a in attacks}
    plain = statistics.median(
        r["erasure_s"] for r in rows["erasediff (paper)"]
    )  # medians: one slow erasure (a busy host) is not the method's cost
    lines = [
        "| model | no attack | "
        + " | ".join(attacks)
        + " | worst margin over gold | retained drop | neighbour drop | FID and KID gates pass | "
        "erasure s, median (x paper) |",
        "|---|" + "---:|" * (len(attacks) + 6),
    ]
    for model, runs in rows.items():
        margin = max(statistics.mean(r[a] for r in runs) - gold_mean[a] for a in attacks)
        cells = [spread([r[a] for r in runs]) if a in runs[0] else "-" for a in ["no attack", *attacks]]
        extra = ["-"] * 4
        if "erasure_s" in runs[0]:
            seconds = statistics.median(r["erasure_s"] for r in runs)
            extra = [
                spread([r["retained_drop"] for r in runs]),
                spread([r["neighbour_drop"] for r in runs]),
                f"{sum(r['fid_kid_pass'] for r in runs):.0f}/{len(runs)}",
                f"{seconds:.0f} ({seconds / plain:.1f}x)",
            ]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {margin:+.2f} | " + " | ".join(extra) + " |")
    return lines


def plot(rows: dict[str, list[dict[str, float]]], attacks: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(rows)
    colors = plt.cm.tab20.colors  # one colour a row, for up to 20 rows
    for i, (model, runs) in enumerate(rows.items()):
        means = [statistics.mean(r[a] for r in runs) for a in attacks]
        errs = [statistics.stdev(r[a] for r in runs) if len(runs) > 1 else 0 for a in attacks]
        ax.bar(
            [j + i * width for j in range(len(attacks))],
            means,
            width,
            yerr=errs,
            label=model,
            capsize=2,
            color=colors[i % len(colors)],
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(attacks))], attacks)
    ax.set_ylabel("attack success")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1))  # below the bars, never over them
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
