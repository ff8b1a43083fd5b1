"""The benchmark's figures: the erasure/preservation Pareto plot, and EraseDiff's lambda_t and cosines (the paper's
Figure 2)."""

from pathlib import Path

import matplotlib.pyplot as plt

from erasediff.reporting.plots import save_figure


def plot_pareto(runs: list, base: dict, forget_bar: float, path: Path) -> Path:
    """Per task: forgotten-class accuracy against retained accuracy and against FID; one point per method and seed."""
    tasks = list(dict.fromkeys(r.task for r in runs))
    methods = list(dict.fromkeys(r.name for r in runs))
    palette = plt.cm.tab10 if len(methods) <= 10 else plt.cm.tab20  # one colour each, also with learning-rate variants
    colours = {m: palette(i) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(len(tasks), 2, figsize=(11, 4.2 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        for ax, (key, label) in zip(
            row,
            (
                ("retained", "retained-class accuracy (higher is better)"),
                ("fid", "FID vs base, classifier features (lower is better)"),
            ),
        ):
            for method in methods:
                group = [r for r in runs if r.task == task and r.name == method]
                ax.scatter(
                    [getattr(r, key) for r in group],
                    [r.forgotten for r in group],
                    color=colours[method],
                    label=method,
                    s=36,
                    alpha=0.8,
                )
            if key == "retained":
                ax.axvline(base[task].retained - 0.05, color="grey", ls=":", lw=1, label="base - 5 points")
            ax.axhline(forget_bar, color="grey", ls="--", lw=1, label="forgetting bar")
            ax.scatter(
                [getattr(base[task], key)], [base[task].forgotten], marker="*", s=160, color="black", label="base model"
            )
            ax.set_xlabel(label)
            ax.set_ylabel("forgotten-class accuracy (lower is better)")
            ax.set_title(task)
        row[0].legend(fontsize=7, loc="center left")
    return save_figure(fig, path)


def plot_curves(runs: list, path: Path) -> Path:
    """lambda_t and cos(delta, g_r), cos(delta, g_f) over the steps of each EraseDiff run (one line per seed)."""
    tasks = list(dict.fromkeys(r.task for r in runs))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(11, 3.6 * max(1, len(tasks))), squeeze=False)
    for row, task in zip(axes, tasks):
        for run in (r for r in runs if r.task == task):
            steps = [x["step"] for x in run.rows]
            row[0].plot(steps, [x["lambda_t"] for x in run.rows], label=f"seed {run.seed}")
            row[1].plot(
                steps,
                [x["cos_delta_retain"] for x in run.rows],
                color="tab:blue",
                alpha=0.7,
                label="cos(delta, g_r)" if run.seed == 0 else None,
            )
            row[1].plot(
                steps,
                [x["cos_delta_forget"] for x in run.rows],
                color="tab:red",
                alpha=0.7,
                label="cos(delta, g_f)" if run.seed == 0 else None,
            )
        row[0].set_title(f"{task}: lambda_t")
        row[1].set_title(f"{task}: cosines (paper Fig. 2)")
        for ax in row:
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
    return save_figure(fig, path)
