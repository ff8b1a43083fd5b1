"""Recovery attacks as curves on the tiny text-to-image model: a digit concept erased with the paper recipe and with
the shipped (robust) settings, every text attack over the budget's grid (inversion steps, relearning steps x rate,
prompt-search steps x candidates, paraphrase count) on the original, the gold standard and each candidate, and the
curve gate the request ships read on it.

"seven" is the shipped request, the concept its settings were screened on (its gold ships). Breadth: another digit
runs the same request with only its prompts, anchors and evaluated class changed (`request_tasks.text_request_for`);
its gold, the UNet retrained without that digit, is trained on first use and cached.

    .venv/bin/python benchmarks/attack_curves_text.py --seeds 0 1 2 --publish                 # "seven"
    .venv/bin/python benchmarks/attack_curves_text.py --digits 7 2 5 --seeds 0 1 2 --append --publish
"""

import argparse
import json
import time
from pathlib import Path

from erasediff.util.offline import go_offline

go_offline()

from attack_curves import curves_of, gate_fields, margins, other_gate_fields, page  # noqa: E402
from request_tasks import CONFIGS, TextRequest  # noqa: E402
from results_page import link, publish  # noqa: E402
from robustness import VARIANTS, TextAttacks  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from erasediff.defaults.text_digits import TEMPLATES, caption_of  # noqa: E402
from erasediff.reporting.plots import save_attack_curves  # noqa: E402
from erasediff.request.schema import load_request  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RECIPES = {"paper": VARIANTS["erasediff (paper)"], "robust": {}}  # robust: the shipped request's own settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--digits",
        type=int,
        nargs="+",
        default=[7],
        help="the concepts: 7 is the shipped request; another digit is the same request with only its prompts, "
        "anchors and evaluated class changed (its gold is trained on first use, about 6 minutes on 2 cores)",
    )
    parser.add_argument("--publish", action="store_true", help="write docs/results/attack-curves-text.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--append", action="store_true", help="keep OUT/attack-curves-text.json's (concept, seed) rows, run the rest"
    )
    parser.add_argument(
        "--every-gate",
        action="store_true",
        help="read the request's other gates on kept rows that pass the curve gate and lack them (new rows have "
        "them): the candidate erased again and evaluated as the pipeline does",
    )
    args = parser.parse_args()
    started = time.time()
    saved = args.out / "attack-curves-text.json"
    rows = json.loads(saved.read_text()) if args.append and saved.is_file() else []
    for digit in tqdm(args.digits, desc="concepts"):
        if all((concept_of(digit), seed) in {(r["concept"], r["seed"]) for r in rows} for seed in args.seeds):
            continue
        rows += concept_rows(TextAttacks(digit), args.seeds, rows, args.out, saved)
    if args.every_gate:
        read_other_gates(rows, args, lambda: saved.write_text(json.dumps(rows, indent=2)))
    rows.sort(key=lambda r: (r["concept"], r["seed"], r["recipe"]))
    figures = [(r["concept"], r["recipe"], r["seed"], figure_path(args.out, r)) for r in rows]
    s = load_request(CONFIGS / TextRequest.request_file).evaluation.text_to_image.attacks
    report = page(
        f"Text attacks over the `{s.budget}` grid: inversion steps {s.inversion_steps}; relearning steps "
        f"{s.relearn_steps} at lr {s.relearn_lr}; prompt search steps {s.search_steps} x candidates "
        f"{s.search_candidates}; paraphrases: the first {s.paraphrase_prompts} prompts and all; k {s.k} real "
        f"images of the concept; {s.samples} samples a reading. Seven is the shipped request (the one its settings "
        "were screened on); the other digits are the same request with only the prompts, anchors and evaluated "
        "class changed, held out from every screen.",
        rows,
        "concept",
        started,
        [f"![{concept}, {recipe}, seed {seed}]({link(f)})" for concept, recipe, seed, f in figures],
    )
    publish(args.out, "attack-curves-text", report, rows, "attack-curves-text" if args.publish else None)


def read_other_gates(rows: list[dict], args: argparse.Namespace, save) -> None:
    """The request's gates besides the attacks' on each row of the chosen digits and seeds that passes the curve
    gate and lacks them: the candidate erased again with the row's seed; its forgotten accuracy, read again, says
    whether it is the candidate the curves measured."""
    for digit in tqdm(args.digits, desc="other gates"):
        todo = [
            r
            for r in rows
            if r["concept"] == concept_of(digit)
            and r["seed"] in args.seeds
            and r["curve gate"]
            and "other gates" not in r
        ]
        if not todo:
            continue
        task = TextRequest(digit)
        for r in todo:
            t = time.time()
            metrics = task.measure(*task.sample(task.unlearn(r["seed"], **RECIPES[r["recipe"]])))
            same = metrics["forgotten_accuracy"] == r["forgotten accuracy"]
            r.update(other_gate_fields(task.gates(metrics), same, time.time() - t))
            save()


def concept_of(digit: int) -> str:
    return caption_of(digit, TEMPLATES[0])


def figure_path(out: Path, row: dict) -> Path:
    return out / f"attack-curves-text-{row['concept'].split()[-1]}-{row['recipe']}-s{row['seed']}.png"


def concept_rows(attacker: TextAttacks, seeds: list[int], rows: list[dict], out: Path, saved: Path) -> list[dict]:
    """Both recipes' rows for one concept at each seed it lacks in `rows`; saved with `rows` as each finishes."""
    task, new = attacker.task, []
    for seed in [s for s in seeds if (attacker.erased, s) not in {(r["concept"], r["seed"]) for r in rows}]:
        t = time.time()
        base = {"original": curves_of(attacker.results(attacker.model, seed))}
        base["gold"] = curves_of(attacker.results(attacker.gold, seed))
        fixed_s = time.time() - t
        for recipe, overrides in RECIPES.items():
            t = time.time()
            unet = task.unlearn(seed, **overrides)
            erase_s = time.time() - t
            t = time.time()
            metrics = task.measure(*task.sample(unet))
            others = other_gate_fields(task.gates(metrics), True, time.time() - t)
            t = time.time()
            per_attack = margins(base, curves_of(attacker.results(attacker.candidate(unet), seed)))
            new.append(
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
                    **others,
                    "curves": {n: points for n, (points, _, _) in per_attack.items()},
                }
            )
            save_attack_curves(
                {n: {"curve": c, "margin_over_gold": m} for n, (c, m, _) in per_attack.items()},
                figure_path(out, new[-1]),
            )
            out.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(rows + new, indent=2))
    return new


if __name__ == "__main__":
    main()
