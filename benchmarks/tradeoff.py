"""Erasure/preservation trade-off: EraseDiff against fine-tuning, NegGrad, SalUn and ESD in one harness.

Every method runs on the same task with the same seeds, batches, learning rate and step budget.
Every few steps a probe samples the forgotten class (and a few of the others) and the evaluator
reads them; time-to-forget is the update time (probes excluded) until the first probe with the
forgotten class at most chance + 5 points. After the budget, each model is evaluated on fixed
seeds: forgotten and retained accuracy, and the classifier-feature FID of its retained classes
against the base model's samples.

    .venv/bin/python benchmarks/tradeoff.py                 # both tasks, 3 seeds (about 17 minutes on 2 cores)
    .venv/bin/python benchmarks/tradeoff.py --publish        # and refresh docs/results/<stem>.md (make
    bench-tradeoff)
    .venv/bin/python benchmarks/tradeoff.py --smoke         # a few steps, one seed, digits only: checks the script
    .venv/bin/python benchmarks/tradeoff.py --stop-at-forgetting --publish   # every method stops at its first forgotten
    probe
                                                            # and is judged there, with and without the FID/KID gates
    make bench-tradeoff-quality                             # time to forgetting AND the request's FID/KID gates (below)
    make bench-tradeoff-quality-long                        # the same on digits with three times the request's budget
    (--steps 300),
                                                            # so that the baselines' time is measured, not bounded
                                                            (--section names its files)

With --stop-at-forgetting every run ends at its first probe that reads forgotten (unlearning.probe.action
stop_when_forgotten), so the quality columns describe the model a user would ship at that time, not one
trained on to the end of the budget.

Equal quality: a method qualifies when it forgets on every seed (and the judged models are forgotten on average),
keeps the mean retained accuracy within 5 points of the base, and every seed's judged model passes the shipped
request's FID/KID gates (tradeoff_tasks.QUALITY_GATES). --until-equal-quality runs each method on the request's
step budget until a probe finds it forgotten and of that quality (tradeoff_tasks.Task.probe_until). --lr-scales
runs every method at each multiple of the task's learning rate, and the verdict takes each method's fastest
qualifying one, so that no method is judged at a step size that suits another.
"""

import argparse
import datetime
import json
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from erasediff.util.offline import go_offline

go_offline()

from results_page import link, write_page  # noqa: E402
from tradeoff_memory import PeakMemory  # noqa: E402
from tradeoff_plots import plot_curves, plot_pareto  # noqa: E402
from tradeoff_tasks import FORGET_BAR, RETAINED_POINTS, TASKS  # noqa: E402

from erasediff.method.unlearning_settings import UnlearnSettings

METHODS = {  # name -> UnlearnSettings overrides; everything else is the task's shared budget
    "erasediff": {"method": "erasediff", "lambda": {"mode": "adaptive", "eta": 0.1}},
    "erasediff-const": {"method": "erasediff", "lambda": {"mode": "constant", "value": 0.1}},
    "erasediff-eta1": {
        "method": "erasediff",
        "lambda": {"mode": "adaptive", "eta": 1.0},
    },  # a larger required forget-loss decrease
    # eta 2 with the anchored retain loss (weight 3): the anchor holds quality while the larger eta forgets sooner
    # (docs/method.md)
    "erasediff-eta2-anchor3": {"method": "erasediff", "lambda": {"mode": "adaptive", "eta": 2.0}, "retain_anchor": 3.0},
    "finetune": {"method": "finetune"},
    "neggrad+": {"method": "neggrad"},  # NegGrad+: descent on the retain set as well as ascent on the forget set
    "salun": {"method": "salun"},
    "esd": {
        "method": "esd",
        "esd": {"sampling_steps": 10},
    },  # x_t sampled on a 10-step DDIM schedule (default 20), for the time budget
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
    lr_scale: float = 1.0  # the task's learning rate times this
    gates: dict = field(default_factory=dict)  # the request's FID/KID gate values at the judged model
    quality_ok: bool = True  # every one of them inside its threshold

    @property
    def name(self) -> str:
        return self.method if self.lr_scale == 1 else f"{self.method} lr x{self.lr_scale:g}"


def run_one(
    task,
    method: str,
    seed: int,
    steps: int | None,
    probe_action: str = "log",
    lr_scale: float = 1.0,
    until_quality: bool = False,
) -> Run:
    """One erasure. With `until_quality` it stops at the first probe that reads forgotten and of equal quality, on the
    task's request-sized step budget."""
    every, budget = (
        (task.until_quality["probe_every"], task.until_quality["steps"])
        if until_quality
        else (task.probe_every, task.settings["steps"])
    )
    settings = UnlearnSettings.model_validate(
        {
            **task.settings,
            **METHODS[method],
            "seed": seed,
            "lr": task.settings["lr"] * lr_scale,
            "probe": {"every": every, "action": "stop_when_forgotten" if until_quality else probe_action},
            "steps": steps or budget,
        }
    )
    rows: list[dict] = []
    with PeakMemory() as memory:
        scores = task.run(settings, lambda m: rows.append(m.as_dict()), until_quality)
    hit = next((r for r in rows if r.get("probe_forgotten") == 1.0), None)
    return Run(
        task.name,
        method,
        seed,
        hit and int(hit["step"]),
        hit and hit["wall_s"],
        scores.forgotten,
        scores.retained,
        scores.fid,
        rows[-1]["wall_s"],
        memory.peak_mb,
        rows,
        lr_scale,
        scores.gates,
        scores.quality_ok,
    )


def _mean(values: list[float | None]) -> str:
    if any(v is None for v in values):
        reached = [v for v in values if v is not None]
        return (
            f"{len(reached)}/{len(values)} seeds"
            if not reached
            else f"{statistics.mean(reached):.1f} ({len(reached)}/{len(values)})"
        )
    return f"{statistics.mean(values):.1f}"


def _groups(runs: list[Run], task: str) -> dict[tuple[str, float], list[Run]]:
    """The runs of one task by (method, learning-rate scale), in METHODS order then scale."""
    keys = sorted(
        {(r.method, r.lr_scale) for r in runs if r.task == task}, key=lambda k: (list(METHODS).index(k[0]), k[1])
    )
    return {k: [r for r in runs if r.task == task and (r.method, r.lr_scale) == k] for k in keys}


def table(runs: list[Run], base: dict[str, object], limits: dict[str, dict[str, float]], memory_unit: str) -> str:
    """One row per task, method and learning-rate scale, means over seeds; the time ratio is against EraseDiff at the
    task's own learning rate; the gate columns count the seeds whose model passes the request's FID/KID gates and give
    the worst gate value over its threshold (above 1 fails)."""
    lines = [
        "| task | method | steps to forget | s to forget | x EraseDiff time | forgotten acc | retained acc (base) | "
        "FID vs base "
        f"| FID/KID gates pass | worst gate / threshold | s total | peak {memory_unit} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task in dict.fromkeys(r.task for r in runs):
        groups = _groups(runs, task)
        ref = [r.seconds_to_forget for r in groups.get(("erasediff", 1.0), [])]
        ref_mean = statistics.mean(ref) if ref and None not in ref else None
        for group in groups.values():
            seconds = [r.seconds_to_forget for r in group]
            ratio = f"{statistics.mean(seconds) / ref_mean:.2f}x" if ref_mean and None not in seconds else "-"
            worst = (
                max((v / limits[task][k] if v is not None else float("inf")) for r in group for k, v in r.gates.items())
                if limits.get(task)
                else None
            )
            lines.append(
                f"| {task} | {group[0].name} | {_mean([r.steps_to_forget for r in group])} | {_mean(seconds)} | "
                f"{ratio} "
                f"| {statistics.mean(r.forgotten for r in group):.1%} | "
                f"{statistics.mean(r.retained for r in group):.1%} ({base[task].retained:.1%}) "
                f"| {statistics.mean(r.fid for r in group):.2f} | {sum(r.quality_ok for r in group)}/{len(group)} | "
                f"{'-' if worst is None else f'{worst:.2f}'} "
                f"| {statistics.mean(r.seconds for r in group):.1f} | {max(r.peak_mb for r in group):.0f} |"
            )
    return "\n".join(lines)


VARIANTS = (
    "erasediff-const",
    "erasediff-eta1",
    "erasediff-eta2-anchor3",
)  # EraseDiff itself with another setting: compared, never counted as a baseline


def qualifying_time(group: list[Run], base, gates: bool = True) -> float | None:
    """Mean time-to-forget of one method at one learning rate when it forgets on every seed (and the judged models' mean
    forgotten accuracy is within the bar), keeps retained accuracy within
    RETAINED_POINTS of the base model and (with `gates`) every seed's model passes the request's FID/KID gates; None
    otherwise. One rule for every method, EraseDiff included."""
    times = [r.seconds_to_forget for r in group]
    if not group or None in times or base.retained - statistics.mean(r.retained for r in group) > RETAINED_POINTS:
        return None
    if (
        statistics.mean(r.forgotten for r in group) > FORGET_BAR
    ):  # the probe's few samples said forgotten, the judged model is not
        return None
    if gates and not all(r.quality_ok for r in group):
        return None
    return statistics.mean(times)


def _fastest(runs: list[Run], base, task: str, method: str, gates: bool) -> tuple[float, str] | None:
    """A method's fastest qualifying learning rate on a task: (time, run name), or None when none qualifies."""
    found = [
        (t, g[0].name)
        for (m, _), g in _groups(runs, task).items()
        if m == method and (t := qualifying_time(g, base, gates)) is not None
    ]
    return min(found) if found else None


def verdict(runs: list[Run], base: dict[str, object], gates: bool = True) -> list[str]:
    """The issue's goal, per task and EraseDiff setting: it qualifies (qualifying_time, at its fastest qualifying
    learning
    rate) and is at least 2x faster than the best qualifying baseline (at that one's fastest)."""
    out = []
    rule = (
        f"forgetting on every seed and at the judgement, retained accuracy within {RETAINED_POINTS:.0%} of the base"
        + (", FID/KID gates on every seed" if gates else "")
    )
    baselines = [m for m in METHODS if m != "erasediff" and m not in VARIANTS]
    for task in dict.fromkeys(r.task for r in runs):
        fair = [f for m in baselines if (f := _fastest(runs, base[task], task, m, gates)) is not None]
        for ours_name in [m for m in ("erasediff", *VARIANTS) if any(r.task == task and r.method == m for r in runs)]:
            ours, label = (
                _fastest(runs, base[task], task, ours_name, gates),
                "EraseDiff" if ours_name == "erasediff" else ours_name,
            )
            if ours is None:
                best = (
                    f"; best qualifying baseline {min(fair)[1]} forgets in {min(fair)[0]:.1f} s"
                    if fair
                    else "; nor does any baseline"
                )
                out.append(f"{task}: {label} does not qualify ({rule}){best}")
            elif not fair:
                out.append(f"{task}: no baseline qualifies ({rule}); {ours[1]} forgets in {ours[0]:.1f} s")
            else:
                best = min(fair)
                speedup = best[0] / ours[0]
                out.append(
                    f"{task}: best qualifying baseline {best[1]} forgets in {best[0]:.1f} s, {ours[1]} in "
                    f"{ours[0]:.1f} s: "
                    f"{speedup:.2f}x ({'met' if speedup >= 2 else 'not met'}, goal >= 2x)"
                )
    return out


def _parts(data: dict | list) -> list[dict]:
    """The invocations in a runs file: one, or several once merged."""
    return data if isinstance(data, list) else [data]


_WHERE = re.compile(r"\s*--(out|publish|section)\b( [^-\s`][^\s`]*)?")  # where an invocation wrote is not how it ran


def _plain_name(name: str) -> str:
    """A --section name becomes file names in --out: letters, digits and dashes only, so it cannot leave that folder."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise argparse.ArgumentTypeError(f"{name!r} is not a plain name (lower-case letters, digits, dashes)")
    return name


def _stop_rule(args: argparse.Namespace) -> str:
    if args.until_equal_quality:
        return (
            "Every run stops at its first probe that reads forgotten and finds the model of equal quality (retained "
            "accuracy within "
            f"{RETAINED_POINTS:.0%} of the base, the request's FID/KID gates), checked on a smaller sample, and is "
            "judged on the full one. "
        )
    return "Every run stops at its first forgotten probe and is judged there. " if args.stop_at_forgetting else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="override each task's step budget")
    parser.add_argument(
        "--until-equal-quality",
        action="store_true",
        help="end every run at its first probe that reads forgotten and passes "
        "the retained-accuracy and FID/KID rule, on the request's step budget (results as tradeoff-quality)",
    )
    parser.add_argument(
        "--lr-scales",
        nargs="+",
        type=float,
        default=[1.0],
        help="run every method at these multiples of the task's learning rate",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--publish", action="store_true", help="write the report to docs/results/<stem>.md")
    parser.add_argument("--smoke", action="store_true", help="digits only, 1 seed, 6 steps")
    parser.add_argument(
        "--stop-at-forgetting",
        action="store_true",
        help="end every run at its first forgotten probe and judge it there "
        "(results as tradeoff-stop; results page tradeoff-stop)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (two tasks may run side by side with 1 each, then --merge)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="no runs: one report from the runs files of earlier invocations (one per task)",
    )
    parser.add_argument(
        "--section",
        type=_plain_name,
        help="name of the results files and results page (default: tradeoff, tradeoff-stop or tradeoff-quality)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.tasks, args.seeds, args.steps = ["digits"], 1, 6
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.section or (
        "tradeoff-quality" if args.until_equal_quality else "tradeoff-stop" if args.stop_at_forgetting else "tradeoff"
    )
    parts = (
        [part for path in args.merge for part in _parts(json.loads(path.read_text()))]
        if args.merge
        else [measure(args)]
    )
    runs = [Run(**r) for part in parts for r in part["runs"]]
    base = {k: SimpleNamespace(**v) for part in parts for k, v in part["base"].items()}
    limits = {k: v for part in parts for k, v in part["limits"].items()}
    (args.out / f"{stem}_runs.json").write_text(json.dumps(parts[0] if len(parts) == 1 else parts))
    unit = "GPU MiB" if torch.cuda.is_available() else "RSS MiB"
    pareto = plot_pareto(runs, base, FORGET_BAR, args.out / f"{stem}_pareto.png")
    curves_name = f"{stem + '_' if args.until_equal_quality or args.section else ''}erasediff_lambda_cosines.png"
    ours = [r for r in runs if r.method == "erasediff" and r.lr_scale == 1]
    curves = (
        plot_curves(ours, args.out / curves_name) if ours else None
    )  # a run of other methods only has no EraseDiff curves
    lines = verdict(runs, base) + (
        []
        if args.until_equal_quality
        else [f"without the FID/KID gates: {line}" for line in verdict(runs, base, gates=False)]
    )
    commands = [_WHERE.sub("", p["command"]) for p in parts]
    report = "\n".join(
        [
            f"Measured {datetime.date.today().isoformat()} on "
            f"{' and '.join(dict.fromkeys(p['device'] for p in parts))}, "
            f"{' and '.join(dict.fromkeys(p['seeds'] for p in parts))} seed(s), by {'; '.join(commands)}"
            f"{' (run side by side, reported together with --merge)' if len(parts) > 1 else ''} in "
            f"{max(p['elapsed_s'] for p in parts) / 60:.1f} min. "
            f"{_stop_rule(args)}Means over seeds; forgetting bar: forgotten-class "
            f'accuracy <= {FORGET_BAR:.0%}; "s to forget" counts update time only (probes excluded); '
            "a cell like `2/3 seeds` means the bar was not reached on every seed within the budget.",
            "",
            table(runs, base, limits, unit),
            "",
            *[f"- {line}" for line in lines],
            "",
            f"![Pareto]({link(pareto)})",
            *(["", f"![EraseDiff lambda_t and cosines]({link(curves)})"] if curves else []),
        ]
    )
    (args.out / f"{stem}.md").write_text(report + "\n")
    print(report)
    if args.publish:
        print(f"wrote {write_page(stem, f'Trade-off: {stem}', report)}")


def measure(args: argparse.Namespace) -> dict:
    """Every run of the invocation, with what the report needs of the tasks (base scores, gate thresholds) and how it
    ran."""
    torch.set_num_threads(min(args.threads, torch.get_num_threads()))
    started = time.perf_counter()
    runs, base, limits = [], {}, {}
    for name in args.tasks:
        task = TASKS[name]() if not args.smoke else TASKS[name](eval_per_class=4)
        base[name], limits[name] = asdict(task.base), task.thresholds
        print(
            f"{task.title}: base model forgotten {task.base.forgotten:.1%}, retained {task.base.retained:.1%}",
            flush=True,
        )
        for seed in range(args.seeds):
            for method in args.methods:
                for scale in args.lr_scales:
                    run = run_one(
                        task,
                        method,
                        seed,
                        args.steps,
                        "stop_when_forgotten" if args.stop_at_forgetting else "log",
                        scale,
                        args.until_equal_quality,
                    )
                    runs.append(asdict(run))
                    print(
                        f"  seed {seed} {run.name:<24} forget@{run.steps_to_forget} "
                        f"({run.seconds_to_forget and round(run.seconds_to_forget, 1)} s) "
                        f"forgotten {run.forgotten:.1%} retained {run.retained:.1%} FID {run.fid:.2f} gates "
                        f"{run.gates} ({run.seconds:.1f} s)",
                        flush=True,
                    )
    device = (
        f"GPU {torch.cuda.get_device_name()}"
        if torch.cuda.is_available()
        else f"CPU, {torch.get_num_threads()} thread(s)"
    )
    flags = _WHERE.sub("", " ".join(sys.argv[1:]))
    return {
        "runs": runs,
        "base": base,
        "limits": limits,
        "device": device,
        "seeds": str(args.seeds),
        "command": f"`benchmarks/tradeoff.py {flags}`",
        "elapsed_s": time.perf_counter() - started,
    }


if __name__ == "__main__":
    main()
