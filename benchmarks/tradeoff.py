"""Erasure/preservation trade-off: EraseDiff against fine-tuning, NegGrad, SalUn and ESD in one harness.

Every method runs on the same task with the same seeds, batches, learning rate and step budget.
Every few steps a probe samples the forgotten class (and a few of the others) and the evaluator
reads them; time-to-forget is the update time (probes excluded) until the first probe with the
forgotten class at most chance + 5 points. After the budget, each model is evaluated on fixed
seeds: forgotten and retained accuracy, and the classifier-feature FID of its retained classes
against the base model's samples.

    .venv/bin/python benchmarks/tradeoff.py                 # both tasks, 3 seeds (about 17 minutes on 2 cores)
    .venv/bin/python benchmarks/tradeoff.py --readme        # and refresh README.md's results section (make bench-tradeoff)
    .venv/bin/python benchmarks/tradeoff.py --smoke         # a few steps, one seed, digits only: checks the script
    .venv/bin/python benchmarks/tradeoff.py --stop-at-forgetting --readme   # every method stops at its first forgotten probe
                                                            # and is judged there: time-to-forget at equal quality

With --stop-at-forgetting every run ends at its first probe that reads forgotten (unlearning.probe.action
stop_when_forgotten), so the quality columns describe the model a user would ship at that time, not one
trained on to the end of the budget.
"""

import argparse
import datetime
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from erasediff.util.offline import go_offline

go_offline()

from readme_section import link, write_section  # noqa: E402
from tradeoff_memory import PeakMemory  # noqa: E402
from tradeoff_plots import plot_curves, plot_pareto  # noqa: E402
from tradeoff_tasks import FORGET_BAR, TASKS  # noqa: E402

from erasediff.method.settings import UnlearnSettings

METHODS = {  # name -> UnlearnSettings overrides; everything else is the task's shared budget
    "erasediff": {"method": "erasediff", "lambda": {"mode": "adaptive", "eta": 0.1}},
    "erasediff-const": {"method": "erasediff", "lambda": {"mode": "constant", "value": 0.1}},
    "erasediff-eta1": {"method": "erasediff", "lambda": {"mode": "adaptive", "eta": 1.0}},  # a larger required forget-loss decrease
    "finetune": {"method": "finetune"},
    "neggrad+": {"method": "neggrad"},  # NegGrad+: descent on the retain set as well as ascent on the forget set
    "salun": {"method": "salun"},
    "esd": {"method": "esd", "esd": {"sampling_steps": 10}},  # x_t sampled on a 10-step DDIM schedule (default 20), for the time budget
}
RESULTS = Path(__file__).parent / "results"


@dataclass
class Run:
    task: str
    method: str
    seed: int
    steps_to_forget: int | None
    seconds_to_forget: float | None
    forgotten: float
    retained: float
    fid: float
    seconds: float
    peak_mb: float
    rows: list[dict]


def run_one(task, method: str, seed: int, steps: int | None, probe_action: str = "log") -> Run:
    settings = UnlearnSettings.model_validate({**task.settings, **METHODS[method], "seed": seed,
                                               "probe": {"every": task.probe_every, "action": probe_action},
                                               **({"steps": steps} if steps else {})})
    rows: list[dict] = []
    with PeakMemory() as memory:
        scores = task.run(settings, lambda m: rows.append(m.as_dict()))
    hit = next((r for r in rows if r.get("probe_forgotten") == 1.0), None)
    return Run(task.name, method, seed, hit and int(hit["step"]), hit and hit["wall_s"], scores.forgotten, scores.retained, scores.fid,
               rows[-1]["wall_s"], memory.peak_mb, rows)


def _mean(values: list[float | None]) -> str:
    if any(v is None for v in values):
        reached = [v for v in values if v is not None]
        return f"{len(reached)}/{len(values)} seeds" if not reached else f"{statistics.mean(reached):.1f} ({len(reached)}/{len(values)})"
    return f"{statistics.mean(values):.1f}"


def table(runs: list[Run], base: dict[str, object], memory_unit: str) -> str:
    """One row per task and method, means over seeds; the time ratio is against EraseDiff (adaptive) on the same task."""
    lines = [f"| task | method | steps to forget | s to forget | x EraseDiff time | forgotten acc | retained acc (base) | FID vs base | s total | peak {memory_unit} |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for task in dict.fromkeys(r.task for r in runs):
        by_method = {m: [r for r in runs if r.task == task and r.method == m] for m in METHODS}
        ref = [r.seconds_to_forget for r in by_method["erasediff"]]
        ref_mean = statistics.mean(ref) if ref and None not in ref else None
        for method, group in by_method.items():
            if not group:
                continue
            seconds = [r.seconds_to_forget for r in group]
            ratio = f"{statistics.mean(seconds) / ref_mean:.2f}x" if ref_mean and None not in seconds else "-"
            lines.append(
                f"| {task} | {method} | {_mean([r.steps_to_forget for r in group])} | {_mean(seconds)} | {ratio} "
                f"| {statistics.mean(r.forgotten for r in group):.1%} | {statistics.mean(r.retained for r in group):.1%} ({base[task].retained:.1%}) "
                f"| {statistics.mean(r.fid for r in group):.2f} | {statistics.mean(r.seconds for r in group):.1f} | {max(r.peak_mb for r in group):.0f} |")
    return "\n".join(lines)


RETAINED_POINTS = 0.05  # a method qualifies when it keeps the mean retained accuracy within 5 points of the base model
VARIANTS = ("erasediff-const", "erasediff-eta1")  # EraseDiff itself with another setting: compared, never counted as a baseline


def qualifying_time(runs: list[Run], base: dict[str, object], task: str, method: str) -> float | None:
    """Mean time-to-forget of `method` on `task` when it forgets on every seed and keeps retained accuracy within
    RETAINED_POINTS of the base model; None otherwise. One rule for every method, EraseDiff included."""
    group = [r for r in runs if r.task == task and r.method == method]
    times = [r.seconds_to_forget for r in group]
    if not group or None in times or base[task].retained - statistics.mean(r.retained for r in group) > RETAINED_POINTS:
        return None
    return statistics.mean(times)


def verdict(runs: list[Run], base: dict[str, object]) -> list[str]:
    """The issue's goal, per task and EraseDiff setting: it qualifies (qualifying_time) and is at least 2x faster than the
    best qualifying baseline."""
    out = []
    baselines = [m for m in METHODS if m != "erasediff" and m not in VARIANTS]
    for task in dict.fromkeys(r.task for r in runs):
        fair = {m: t for m in baselines if (t := qualifying_time(runs, base, task, m)) is not None}
        for ours_name in [m for m in ("erasediff", *VARIANTS) if any(r.task == task and r.method == m for r in runs)]:
            ours, label = qualifying_time(runs, base, task, ours_name), "EraseDiff" if ours_name == "erasediff" else ours_name
            if ours is None:
                out.append(f"{task}: {label} does not qualify (forgetting on every seed with retained accuracy within "
                           f"{RETAINED_POINTS:.0%} of the base)")
            elif not fair:
                out.append(f"{task}: no baseline qualifies (forgets on every seed, retained accuracy within {RETAINED_POINTS:.0%}); "
                           f"{label} forgets in {ours:.1f} s")
            else:
                best = min(fair, key=fair.get)
                speedup = fair[best] / ours
                out.append(f"{task}: best qualifying baseline {best} forgets in {fair[best]:.1f} s, {label} in {ours:.1f} s: "
                           f"{speedup:.2f}x ({'met' if speedup >= 2 else 'not met'}, goal >= 2x)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="override each task's step budget")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--readme", action="store_true", help="write the report into README.md between its tradeoff markers")
    parser.add_argument("--smoke", action="store_true", help="digits only, 1 seed, 6 steps")
    parser.add_argument("--stop-at-forgetting", action="store_true", help="end every run at its first forgotten probe and judge it there "
                        "(results as tradeoff-stop; README section tradeoff-stop)")
    args = parser.parse_args()
    if args.smoke:
        args.tasks, args.seeds, args.steps = ["digits"], 1, 6
    torch.set_num_threads(min(2, torch.get_num_threads()))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    runs, base = [], {}
    for name in args.tasks:
        task = TASKS[name]() if not args.smoke else TASKS[name](eval_per_class=4)
        base[name] = task.base
        print(f"{task.title}: base model forgotten {task.base.forgotten:.1%}, retained {task.base.retained:.1%}", flush=True)
        for seed in range(args.seeds):
            for method in args.methods:
                run = run_one(task, method, seed, args.steps, "stop_when_forgotten" if args.stop_at_forgetting else "log")
                runs.append(run)
                print(f"  seed {seed} {method:<16} forget@{run.steps_to_forget} ({run.seconds_to_forget and round(run.seconds_to_forget, 1)} s) "
                      f"forgotten {run.forgotten:.1%} retained {run.retained:.1%} FID {run.fid:.2f} ({run.seconds:.1f} s)", flush=True)

    device = f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    unit = "GPU MiB" if torch.cuda.is_available() else "RSS MiB"
    pareto = plot_pareto(runs, base, FORGET_BAR, args.out / f"{'tradeoff-stop' if args.stop_at_forgetting else 'tradeoff'}_pareto.png")
    curves = plot_curves([r for r in runs if r.method == "erasediff"], args.out / "erasediff_lambda_cosines.png")
    lines = verdict(runs, base)
    stem = "tradeoff-stop" if args.stop_at_forgetting else "tradeoff"
    elapsed = time.perf_counter() - started
    report = "\n".join([
        f"Measured {datetime.date.today().isoformat()} on {device}, {args.seeds} seed(s), by `benchmarks/tradeoff.py`"
        f"{' --smoke' if args.smoke else ''}{' --stop-at-forgetting' if args.stop_at_forgetting else ''} in {elapsed / 60:.1f} min. "
        f"{'Every run stops at its first forgotten probe and is judged there. ' if args.stop_at_forgetting else ''}Means over seeds; forgetting bar: forgotten-class "
        f"accuracy <= {FORGET_BAR:.0%}; \"s to forget\" counts update time only (probes excluded); "
        "a cell like `2/3 seeds` means the bar was not reached on every seed within the budget.", "",
        table(runs, base, unit), "", *[f"- {line}" for line in lines], "",
        f"![Pareto]({link(pareto)})", "", f"![EraseDiff lambda_t and cosines]({link(curves)})",
    ])
    (args.out / f"{stem}.md").write_text(report + "\n")
    (args.out / f"{stem}_runs.json").write_text(json.dumps([asdict(r) for r in runs]))
    print(report)
    if args.readme:
        write_section(stem, report)


if __name__ == "__main__":
    main()
