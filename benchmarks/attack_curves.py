"""Recovery attacks as curves over the attacker's budget, on digit classes other than the one the defaults were
tuned on: the original model, the gold standard retrained without the class, and each recipe's candidate.

For every (class, seed): the class erased from the embedded digits model with each recipe (the shipped request's
settings otherwise), every class attack run over the named budget's grid (ClassAttackSettings: images held x
relearning steps x learning rate x guidance, inversion steps), and the curve gate the request ships read on it: the
worst margin of the candidate over the gold at one budget point, and the area between the curves. Golds are
retrained per class (about 4.5 minutes each on 2 cores, cached after).

    .venv/bin/python benchmarks/attack_curves.py                           # classes 3 and 4, seed 0, paper and robust
    .venv/bin/python benchmarks/attack_curves.py --classes 0 1 2 3 4 5 6 7 8 9 --seeds 0 1 2 --publish
"""

import argparse
import json
import time
from pathlib import Path

import torch

from erasediff.util.offline import go_offline

go_offline()

from results_page import link, publish  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from erasediff.attacks.class_attacks import ClassAttackSettings, run_class_attacks  # noqa: E402
from erasediff.attacks.gold import retrained_gold  # noqa: E402
from erasediff.comparison.attacks import curve_rows  # noqa: E402
from erasediff.data.digits import load_digits_split  # noqa: E402
from erasediff.data.image_sets import split_forget_retain  # noqa: E402
from erasediff.defaults.digits_models import digits_split_seed  # noqa: E402
from erasediff.defaults.resolve import resolve_classifier, resolve_model  # noqa: E402
from erasediff.evaluation.class_accuracy import class_scores, mean_accuracy  # noqa: E402
from erasediff.evaluation.metric_settings import EvalSettings  # noqa: E402
from erasediff.method.recipes import effective_settings  # noqa: E402
from erasediff.method.targets.classes import unlearn_classes  # noqa: E402
from erasediff.reporting.plots import save_attack_curves  # noqa: E402
from erasediff.request.gates import GateReport  # noqa: E402

RESULTS = Path(__file__).parent / "results"
MARGIN_MAX = 0.1  # the shipped digits request's attack_margin_over_gold_max
QUICK = EvalSettings(samples_per_class=20, steps=20)  # forgotten and retained accuracy without attack (a screen's read)


def attack_curves(model, target: int, held, retain, classifier, settings: ClassAttackSettings) -> dict[str, dict]:
    """{attack: {(budget point): success}} for one model."""
    pick = torch.randperm(len(retain), generator=torch.Generator().manual_seed(settings.seed))[: settings.retain_images]
    return curves_of(
        run_class_attacks(model, target, held, retain.images[pick], retain.labels[pick], classifier, settings)
    )


def curves_of(results: dict) -> dict[str, dict]:
    """{attack: {(budget point): success}} from attack results (AttackResult.curve)."""
    return {
        name: {tuple(sorted((k, v) for k, v in p.items() if k != "success")): p["success"] for p in r.curve}
        for name, r in results.items()
    }


def margins(base: dict[str, dict], found: dict[str, dict]) -> dict[str, tuple[list[dict], float, float]]:
    """Per attack: (points, worst margin of the candidate over the gold, area between the curves)."""
    return {
        name: curve_rows({"original": base["original"][name], "gold": base["gold"][name], "unlearned": curve})
        for name, curve in found.items()
    }


def gate_fields(per_attack: dict) -> dict:
    worst = max(margin for _, margin, _ in per_attack.values())
    return {
        **{f"{name} margin": margin for name, (_, margin, _) in per_attack.items()},
        "worst margin": worst,
        "worst area": max(area for _, _, area in per_attack.values()),
        "curve gate": worst <= MARGIN_MAX,
    }


def table(rows: list[dict], first: str) -> list[str]:
    """The results table: one row per (`first`, seed, recipe)."""
    attacks = [k.removesuffix(" margin") for k in rows[0] if k.endswith(" margin") and k != "worst margin"]
    lines = [
        f"| {first} | seed | recipe | "
        + " | ".join(attacks)
        + " | worst margin | worst area | curve gate (<= +0.10) | "
        "forgotten acc. (no attack) | retained drop | erasure s | attack s (candidate) | other gates |",
        "|---:|---:|---|" + "---:|" * (len(attacks) + 7) + "---|",
    ]
    for r in rows:
        lines.append(
            f"| {r[first]} | {r['seed']} | {r['recipe']} | "
            + " | ".join(f"{r[f'{a} margin']:+.2f}" for a in attacks)
            + f" | {r['worst margin']:+.2f} | {r['worst area']:.3f} | {'pass' if r['curve gate'] else 'FAIL'} | "
            f"{r['forgotten accuracy']:.2f} | {r['retained drop']:+.3f} | {r['erasure s']:.0f} | "
            f"{r['attacks s (candidate)']:.0f} | {other_gates(r)} |"
        )
    return lines


def other_gates(row: dict) -> str:
    """The request's other gates on the row's candidate: pass, FAIL with the gates that failed, or not read."""
    if "other gates" not in row:
        return "not read"
    gold = row.get("gold on those gates", {})
    failed = [
        f"{gate} {value:+.3f}" + (f" (gold {gold[gate]:+.3f})" if gold.get(gate) is not None else "")
        if value is not None
        else f"{gate} missing"
        for gate, value in row["other gates failed"].items()
    ]
    verdict = "pass" if row["other gates"] else "FAIL: " + ", ".join(failed)
    return verdict if row["same candidate"] else f"{verdict} (re-erased candidate differs)"


def page(budget: str, rows: list[dict], first: str, started: float, figures: list[str]) -> str:
    """The results page: the budget, how margins are read, the table, each recipe's pass rate and the figures."""
    return "\n".join(
        [
            f"{budget} Margin: the candidate's success minus the gold's at the same budget point, the worst point of "
            "each attack's grid; area: the mean excess over the gold across the grid. Other gates: every gate the "
            "request ships besides the attacks' (accuracy, neighbours, image quality), at its evaluation protocol, "
            "on the candidate erased again (`--every-gate`); a pair passes every gate when it passes those and the "
            "curve gate.",
            "",
            *table(rows, first),
            "",
            *summary(rows),
            "",
            f"This invocation ran {time.time() - started:.0f} s on {torch.get_num_threads()} threads (rows kept with "
            "--append were measured before it; each row gives its own seconds).",
            "",
            *figures,
        ]
    )


def summary(rows: list[dict]) -> list[str]:
    lines = []
    for recipe in sorted({r["recipe"] for r in rows}):
        mine = [r for r in rows if r["recipe"] == recipe]
        passed = sum(r["curve gate"] for r in mine)
        every = sum(r["curve gate"] and r.get("other gates", False) for r in mine)
        unread = sum(r["curve gate"] and "other gates" not in r for r in mine)
        lines.append(
            f"- {recipe}: curve gate passed on {passed}/{len(mine)} pairs; worst margin over the gold "
            f"{max(r['worst margin'] for r in mine):+.2f}; every gate passed on {every}/{len(mine)}"
            + (f" ({unread} passing the curve gate not read on the others)" if unread else "")
        )
    return lines


def read_other_gates(rows: list[dict], args: argparse.Namespace, model, save) -> None:
    """The request's gates other than the attacks' (forgotten, retained and neighbour accuracy, FID, KID, at the
    request's evaluation protocol) on each row of the chosen classes, seeds and recipes that passes the curve gate
    and lacks them. The candidate is erased again with the row's seed; the quick forgotten accuracy, read again,
    says whether it is the candidate the curves measured."""
    from request_tasks import DigitsRequest

    for target in tqdm(args.classes, desc="other gates"):
        mine = [r for r in rows if r["class"] == target and r["seed"] in args.seeds and r["recipe"] in args.recipes]
        todo = [r for r in mine if r["curve gate"] and "other gates" not in r]  # a curve fail fails every gate
        if not todo:
            continue
        task, gold = DigitsRequest(target), None
        for r in todo:
            name, _, advanced = r["recipe"].partition(":")
            settings = effective_settings(name, "class", json.loads(advanced) if advanced else None, seed=r["seed"])
            t = time.time()
            candidate = unlearn_classes(model, task.forget, task.retain, [target], settings, progress=False)
            report = task.gates(task.measure_unet(candidate.unet, candidate))
            again = class_scores(candidate, task.classifier, QUICK, progress=False)[target].accuracy
            if not report.passed and gold is None:  # is the gate's verdict one the gold would get too?
                retrained = retrained_gold(task.retain, [target], progress=False)
                gold = task.gates(task.measure_unet(retrained.unet, retrained))
            r.update(other_gate_fields(report, again == r["forgotten accuracy"], time.time() - t, gold))
            save()


def other_gate_fields(report: GateReport, same_candidate: bool, seconds: float, gold: GateReport | None = None) -> dict:
    """A row's record of the request's other gates (see `other_gates`): the failed gates' values, and the gold's
    values on the same gates where it was read."""
    failed = {g.gate: g.value for g in report.gates if not g.passed}
    return {
        "other gates": report.passed,
        "other gates failed": failed,
        "gold on those gates": {g.gate: g.value for g in gold.gates if g.gate in failed} if gold else {},
        "same candidate": same_candidate,
        "other gates s": seconds,
    }


def figure_path(out: Path, target: int, recipe: str, seed: int) -> Path:
    name, _, advanced = recipe.partition(":")
    return out / f"attack-curves-{target}-{name}{'-screen' if advanced else ''}-s{seed}.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--recipes",
        nargs="+",
        default=["paper", "robust"],
        help="recipe names, or RECIPE:JSON with unlearning.advanced overrides (a screen), e.g. "
        'robust:{"relearn":{"lr":0.0012}}',
    )
    parser.add_argument("--budget", default="standard", choices=sorted(ClassAttackSettings.BUDGETS))
    parser.add_argument("--publish", action="store_true", help="write docs/results/attack-curves.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the rows of OUT/attack-curves.json and compute only the (class, seed, recipe) it lacks; rows are "
        "saved there as each finishes, so a long breadth run can be stopped and taken up again",
    )
    parser.add_argument(
        "--every-gate",
        action="store_true",
        help="also read the request's other gates (accuracy, neighbours, FID, KID) on each row of --recipes and "
        "--classes that lacks them: the candidate erased again, evaluated as the pipeline does (about a minute a row)",
    )
    args = parser.parse_args()
    started = time.time()
    saved = args.out / "attack-curves.json"
    rows = json.loads(saved.read_text()) if args.append and saved.is_file() else []
    done = {(r["class"], r["seed"], r["recipe"]) for r in rows}
    model = resolve_model("digits")
    classifier, _ = resolve_classifier("digits")
    train, heldout = load_digits_split(model.unet.config.sample_size, seed=digits_split_seed(model.lineage))
    for target in tqdm(args.classes, desc="classes"):
        if all((target, seed, recipe) in done for seed in args.seeds for recipe in args.recipes):
            continue
        forget, retain = split_forget_retain(train, [target], model.num_classes)
        t = time.time()
        gold = retrained_gold(retain, [target], progress=False)
        gold_s = time.time() - t
        held = heldout.images[heldout.labels == target]
        for seed in args.seeds:
            if all((target, seed, recipe) in done for recipe in args.recipes):
                continue
            settings = ClassAttackSettings(budget=args.budget, seed=seed)
            t = time.time()
            base = {
                m: attack_curves(m_, target, held, retain, classifier, settings)
                for m, m_ in (("original", model), ("gold", gold))
            }
            fixed_s = time.time() - t
            for recipe in args.recipes:
                if (target, seed, recipe) in done:
                    continue
                name, _, advanced = recipe.partition(":")
                t = time.time()
                candidate = unlearn_classes(
                    model,
                    forget,
                    retain,
                    [target],
                    effective_settings(name, "class", json.loads(advanced) if advanced else None, seed=seed),
                    progress=False,
                )
                erase_s = time.time() - t
                scores = class_scores(candidate, classifier, QUICK, progress=False)
                base_scores = class_scores(model, classifier, QUICK, progress=False)
                kept = [c for c in range(model.num_classes) if c != target]
                t = time.time()
                found = attack_curves(candidate, target, held, retain, classifier, settings)
                attack_s = time.time() - t
                per_attack = margins(base, found)
                rows.append(
                    {
                        "class": target,
                        "seed": seed,
                        "recipe": recipe,
                        **gate_fields(per_attack),
                        "forgotten accuracy": scores[target].accuracy,
                        "retained drop": mean_accuracy(base_scores, kept) - mean_accuracy(scores, kept),
                        "erasure s": erase_s,
                        "attacks s (candidate)": attack_s,
                        "attacks s (original + gold)": fixed_s,
                        "gold s": gold_s,
                    }
                )
                save_attack_curves(
                    {n: {"curve": c, "margin_over_gold": m} for n, (c, m, _) in per_attack.items()},
                    figure_path(args.out, target, recipe, seed),
                )
                args.out.mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps(rows, indent=2))
    if args.every_gate:
        read_other_gates(rows, args, model, lambda: saved.write_text(json.dumps(rows, indent=2)))
    rows.sort(key=lambda r: (r["class"], r["seed"], r["recipe"]))
    figures = [
        (r["class"], r["recipe"], r["seed"], figure_path(args.out, r["class"], r["recipe"], r["seed"])) for r in rows
    ]
    s = ClassAttackSettings(budget=args.budget)
    report = page(
        f"Recovery attacks over the `{args.budget}` budget grid (k {s.k}, relearning steps {s.relearn_steps} at lr "
        f"{s.relearn_lr}, inversion steps {s.inversion_steps}, guidance {s.guidance}; {s.samples} samples a reading).",
        rows,
        "class",
        started,
        [f"![class {c}, {r}, seed {sd}]({link(f)})" for c, r, sd, f in figures],
    )
    publish(args.out, "attack-curves", report, rows, "attack-curves" if args.publish else None, "Attack curves")


if __name__ == "__main__":
    main()
