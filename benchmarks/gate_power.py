"""Gate power: the shipped requests' default gates against known-bad models, and against reruns (the attack gates
are benchmarks/robustness.py's).

A gate that never fires proves nothing. For each embedded request this runs the request's own erasure
twice (seeds 0 and 1: both must pass, the false-alarm check), asks the same of the gold standard (the base recipe
retrained without the forgotten class: exact unlearning, which a fair gate lets through), and then degrades the seed-0
candidate in
ways a reviewer must not let through, each measured by the pipeline's own metrics and judged by the
request's own gates:

* pixel noise N(0, 0.2) on the samples (pixels in [-1, 1]), and a milder N(0, 0.1) as a detection limit;
* Gaussian blur (3x3, sigma 0.7), and a milder sigma 0.5;
* a weight perturbation of the candidate's UNet, scaled (bisection) to cost about 10 points of retained accuracy;
* the same erasure applied to a base model whose training stopped half-way (EMA weights at half the recipe's steps).

    .venv/bin/python benchmarks/gate_power.py            # both requests (about 15 minutes on 2 cores, first run trains
    the half models)
    .venv/bin/python benchmarks/gate_power.py --publish   # and write docs/results/gate-power.md (make bench-gates)
    .venv/bin/python benchmarks/gate_power.py --task text --publish   # one request again; the other's rows come from
    the
    last results
"""

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torchvision.transforms.functional as TF

from erasediff.util.offline import go_offline

go_offline()

from request_tasks import TASKS  # noqa: E402
from results_page import publish  # noqa: E402

from erasediff.request.gates import ATTACK_GATES  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SHOWN = (
    "forgotten_accuracy_upper",
    "retained_accuracy_lower",
    "fid_classifier",
    "kid_classifier",
    "drift_kid_classifier",
)


def perturbed(unet: torch.nn.Module, scale: float, seed: int = 0) -> torch.nn.Module:
    """Gaussian noise on every weight, `scale` times the mean magnitude of its tensor."""
    noisy = copy.deepcopy(unet)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale * p.abs().mean())
    return noisy


def calibrate_perturbation(task, unet: torch.nn.Module, target_drop: float = 0.10) -> tuple[float, float]:
    """The weight-noise scale whose quick retained-accuracy drop is closest to `target_drop` (bisection on a log
    scale)."""
    base = task.quick_retained(unet)
    low, high, best = 0.0, 1.0, (1.0, 0.0)
    for _ in range(8):
        scale = (low + high) / 2
        drop = base - task.quick_retained(perturbed(unet, scale))
        if abs(drop - target_drop) < abs(best[1] - target_drop):
            best = (scale, drop)
        low, high = (scale, high) if drop < target_drop else (low, scale)
    return best


def row(task, case: str, change: str, expect: str, metrics: dict[str, float]) -> dict:
    report = task.gates(metrics)
    failed = [g.gate for g in report.gates if not g.passed]
    verdict = "passed" if report.passed else "rejected"
    values = {g.gate: g.value for g in report.gates}
    print(
        f"  {case}: {verdict} ({', '.join(failed) or 'all gates pass'}): "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in values.items()),
        flush=True,
    )
    return {
        "task": task.name,
        "case": case,
        "change": change,
        "expect": expect,
        "verdict": verdict,
        "correct": verdict == expect,
        "failed_gates": failed,
        "gate_values": values,
        "metrics": {k: metrics.get(k) for k in SHOWN},
    }


def run_task(task) -> list[dict]:
    rows = []
    candidate = None
    for seed in (0, 1):
        unet = task.unlearn(seed)
        candidate = candidate or unet
        rows.append(row(task, f"rerun, seed {seed}", "the request's own erasure", "passed", task.measure_unet(unet)))
    gold = task.gold()
    rows.append(
        row(
            task,
            "gold standard",
            "no erasure: the base recipe retrained without the forgotten class",
            "passed",
            task.measure_unet(gold.unet, gold),
        )
    )
    images, labels = task.sample(candidate)
    generator = torch.Generator().manual_seed(0)
    for sigma, expect in ((0.2, "rejected"), (0.1, "limit")):
        noisy = (images + sigma * torch.randn(images.shape, generator=generator)).clamp(-1, 1)
        rows.append(
            row(
                task,
                f"pixel noise {sigma}",
                f"N(0, {sigma}) added to the candidate's samples",
                expect,
                task.measure(noisy, labels),
            )
        )
    for sigma, expect in ((0.7, "rejected"), (0.5, "limit")):
        rows.append(
            row(
                task,
                f"blur {sigma}",
                f"3x3 Gaussian blur, sigma {sigma}, on the candidate's samples",
                expect,
                task.measure(TF.gaussian_blur(images, 3, sigma), labels),
            )
        )
    scale, drop = calibrate_perturbation(task, candidate)
    rows.append(
        row(
            task,
            "weight noise",
            f"N(0, {scale:.3f} x mean |w|) on every UNet weight (quick probe: -{100 * drop:.1f} pts retained)",
            "rejected",
            task.measure_unet(perturbed(candidate, scale)),
        )
    )
    half = task.trained_for(task.half_steps)
    rows.append(
        row(
            task,
            "half-trained base",
            f"the erasure applied to the base recipe stopped at step {task.half_steps} of {2 * task.half_steps}",
            "rejected",
            task.measure_unet(task.unlearn(0, half), half),
        )
    )
    return rows


def _fmt(value: float | None) -> str:
    return "missing" if value is None else f"{value:.3f}"


def detected(row: dict, candidate: dict) -> bool:
    """A degradation is caught when a gate fails that the undegraded candidate passed (a gate the candidate already
    fails says nothing about the degradation)."""
    return bool(set(row["failed_gates"]) - set(candidate["failed_gates"]))


def table(rows: list[dict], tasks: dict) -> str:
    lines, graded = [], []
    for name, task in tasks.items():
        gates = [
            g
            for g in task.request.gates.model_dump()
            if g not in ("bound", "earlier_erasures_accuracy_max", *ATTACK_GATES)
            and getattr(task.request.gates, g) is not None
        ]
        lines += [
            f"**{task.request_file}** (bound: {task.request.gates.bound}; original: "
            + ", ".join(f"{k} {_fmt(task.original_metrics.get(k))}" for k in SHOWN if k in task.original_metrics)
            + ")",
            "",
            "| case | what changed | "
            + " | ".join(f"{g} ({getattr(task.request.gates, g)})" for g in gates)
            + " | gates say | caught (a gate the candidate passed fails) | expected |",
            "|---|---|" + "---:|" * len(gates) + "---|---|---|",
        ]
        task_rows = [r for r in rows if r["task"] == name]
        candidate = task_rows[0]  # the seed-0 rerun: every degradation is applied to it
        for r in task_rows:
            cells = [
                ("**" if g in r["failed_gates"] else "")
                + _fmt(r["gate_values"].get(g))
                + ("**" if g in r["failed_gates"] else "")
                for g in gates
            ]
            should_pass = r["expect"] == "passed"  # a rerun or the gold: a false alarm if refused
            caught = "-" if should_pass else ("yes" if detected(r, candidate) else "no")
            ok = r["verdict"] == "passed" if should_pass else caught == "yes"
            if r["expect"] != "limit":
                graded.append(ok)
            expect = "detection limit (either)" if r["expect"] == "limit" else ("pass" if should_pass else "caught")
            mark = (
                "" if r["expect"] == "limit" or ok else " (MISSED)" if not should_pass else " (refused: a false alarm)"
            )
            lines.append(
                f"| {r['case']} | {r['change']} | "
                + " | ".join(cells)
                + f" | {r['verdict']} | {caught}{mark} | {expect} |"
            )
        lines.append("")
    lines.append(f"{sum(graded)} of {len(graded)} graded cases as expected; bold: a gate that failed.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), action="append", help="default: both")
    parser.add_argument("--publish", action="store_true", help="write the table to docs/results/gate-power.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started, rows, tasks = time.time(), [], {}
    for name in args.task or sorted(TASKS):
        print(f"{name}:", flush=True)
        tasks[name] = TASKS[name]()
        rows += run_task(tasks[name])
    seconds = time.time() - started
    earlier = args.out / "gate_power.json"
    if (
        args.task and earlier.is_file()
    ):  # the requests not rerun keep their last measured rows, under their own request's gates
        kept = [r for r in json.loads(earlier.read_text()) if r["task"] not in tasks]
        for name in sorted({r["task"] for r in kept}):
            tasks[name] = TASKS[name]()
        rows, tasks = kept + rows, dict(sorted(tasks.items()))
    rerun = (
        f" ({', '.join(args.task)} only; the other rows from the previous run)"
        if args.task and len(tasks) > len(args.task)
        else ""
    )
    report = table(rows, tasks) + f"\n\nMeasured in {seconds:.0f} s{rerun} on {torch.get_num_threads()} threads."
    publish(args.out, "gate_power", report, rows, "gate-power" if args.publish else None, "Gate power")


if __name__ == "__main__":
    main()
