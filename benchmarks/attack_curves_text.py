"""Recovery attacks as curves on the tiny text-to-image model: "seven" erased with the paper recipe and with the
shipped (robust) settings, every text attack over the budget's grid (inversion steps, relearning steps x rate,
prompt-search steps x candidates, paraphrase count) on the original, the gold standard (shipped for "seven") and each
candidate, and the curve gate the request ships read on it.

    .venv/bin/python benchmarks/attack_curves_text.py --seeds 0 1 2 --publish   # docs/results/attack-curves-text.md

Other concepts need a gold retrained without them (not shipped; erasediff/attacks/gold.py trains it on first use).
"""

import argparse
import json
import time
from pathlib import Path

from erasediff.util.offline import go_offline

go_offline()

from attack_curves import curves_of, gate_fields, margins, page  # noqa: E402
from results_page import link, publish  # noqa: E402
from robustness import VARIANTS, TextAttacks  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from erasediff.reporting.plots import save_attack_curves  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RECIPES = {"paper": VARIANTS["erasediff (paper)"], "robust": {}}  # robust: the shipped request's own settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--publish", action="store_true", help="write docs/results/attack-curves-text.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--append", action="store_true", help="keep OUT/attack-curves-text.json's seeds, run the rest")
    args = parser.parse_args()
    started = time.time()
    saved = args.out / "attack-curves-text.json"
    rows = json.loads(saved.read_text()) if args.append and saved.is_file() else []
    attacker = TextAttacks()
    task = attacker.task
    for seed in tqdm([s for s in args.seeds if s not in {r["seed"] for r in rows}], desc="seeds"):
        t = time.time()
        base = {"original": curves_of(attacker.results(attacker.model, seed))}
        base["gold"] = curves_of(attacker.results(attacker.gold, seed))
        fixed_s = time.time() - t
        for recipe, overrides in RECIPES.items():
            t = time.time()
            unet = task.unlearn(seed, **overrides)
            erase_s = time.time() - t
            metrics = task.measure(*task.sample(unet))
            t = time.time()
            per_attack = margins(base, curves_of(attacker.results(attacker.candidate(unet), seed)))
            rows.append(
                {
                    "concept": attacker.erased,
                    "seed": seed,
                    "recipe": recipe,
                    **gate_fields(per_attack),
                    "forgotten accuracy": metrics["forgotten_accuracy"],
                    "retained drop": task.original_metrics["retained_accuracy"] - metrics["retained_accuracy"],
                    "erasure s": erase_s,
                    "attacks s (candidate)": time.time() - t,
                    "attacks s (original + gold)": fixed_s,
                    "curves": {n: points for n, (points, _, _) in per_attack.items()},
                }
            )
            figure = args.out / f"attack-curves-text-{recipe}-s{seed}.png"
            save_attack_curves({n: {"curve": c, "margin_over_gold": m} for n, (c, m, _) in per_attack.items()}, figure)
            args.out.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(rows, indent=2))
    rows.sort(key=lambda r: (r["seed"], r["recipe"]))
    figures = [(r["recipe"], r["seed"], args.out / f"attack-curves-text-{r['recipe']}-s{r['seed']}.png") for r in rows]
    s = attacker.settings
    report = page(
        f"Text attacks over the `{s.budget}` grid: inversion steps {s.inversion_steps}; relearning steps "
        f"{s.relearn_steps} at lr {s.relearn_lr}; prompt search steps {s.search_steps} x candidates "
        f"{s.search_candidates}; paraphrases: the first {s.paraphrase_prompts} prompts and all; k {s.k} real "
        f"sevens; {s.samples} samples a reading.",
        rows,
        "concept",
        started,
        [f"![{recipe}, seed {seed}]({link(f)})" for recipe, seed, f in figures],
    )
    publish(args.out, "attack-curves-text", report, rows, "attack-curves-text" if args.publish else None)


if __name__ == "__main__":
    main()
