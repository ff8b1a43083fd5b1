"""Figures people look at instead of numbers: unlearning curves and sample grids (PNG)."""

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402

matplotlib.use("Agg")


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write a matplotlib figure as PNG and free it."""
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_unlearning_curves(rows: list[dict[str, float]], path: Path) -> Path:
    """Losses, lambda_t, the two cosines (the paper's Figure 2), the update norm and, when a retain probe
    ran, its readings; a baseline draws only the series it logs."""
    panels = [
        ("losses", ["retain_loss", "forget_loss"]),
        ("lambda_t", ["lambda_t"]),
        ("cosines (paper Fig. 2)", ["cos_delta_retain", "cos_delta_forget"]),
        ("update norm / q_hat", ["grad_norm", "q_hat"]),
    ]
    if any("probe_degradation" in r for r in rows):
        panels += [
            ("retain probe: utility lost vs base", ["probe_degradation"]),
            ("retain probe: forgetting", ["probe_forget_advantage", "probe_forgotten_accuracy", "probe_forgotten"]),
        ]
    fig, axes = plt.subplots(len(panels) // 2, 2, figsize=(10, 3.5 * (len(panels) // 2)))
    for ax, (title, keys) in zip(axes.flat, panels):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o" if key.startswith("probe_") else None, markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def save_class_grid(images: torch.Tensor, labels: torch.Tensor, per_class: int, path: Path) -> Path:
    """One row per class, `per_class` samples each; images in [-1, 1]."""
    rows = [images[labels == c][:per_class] for c in labels.unique().tolist()]
    grid = make_grid(torch.cat(rows), nrow=per_class, normalize=True, value_range=(-1, 1), pad_value=1.0)
    save_image(grid, path)
    return Path(path)


def save_before_after_grid(
    before: torch.Tensor, after: torch.Tensor, labels: torch.Tensor, per_class: int, path: Path
) -> Path:
    """Left half: the base model; right half: the unlearned model; same seeds, one row per class."""
    rows = []
    for c in labels.unique().tolist():
        rows += [before[labels == c][:per_class], torch.ones(1, *before.shape[1:]), after[labels == c][:per_class]]
    grid = make_grid(torch.cat(rows), nrow=2 * per_class + 1, normalize=True, value_range=(-1, 1), pad_value=1.0)
    save_image(grid, path)
    return Path(path)


CURVE_STYLES = {
    "original": ("tab:gray", "original"),
    "gold": ("tab:green", "gold (retrained)"),
    "unlearned": ("tab:red", "candidate"),
}


def _budget_label(point: dict) -> str:
    short = {"k": "k", "steps": "s", "lr": "lr", "guidance": "w"}
    return " ".join(
        f"{short.get(k, k)}{v:g}" for k, v in point.items() if k not in CURVE_STYLES and isinstance(v, float | int)
    )


def save_attack_curves(rows: dict[str, dict], path: Path) -> Path:
    """Success against the attacker's budget, one panel per attack: original, gold and candidate, each point a
    budget the gate reads (the worst candidate-minus-gold margin over them is the gated value)."""
    attacks = [a for a, row in rows.items() if row.get("curve")]
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.2 * len(attacks), 3.6), squeeze=False)
    for ax, attack in zip(axes[0], attacks, strict=True):
        points = rows[attack]["curve"]
        x = range(len(points))
        for model, (color, label) in CURVE_STYLES.items():
            ys = [p.get(model) for p in points]
            if any(y is not None for y in ys):
                ax.plot(x, [float("nan") if y is None else y for y in ys], "o-", color=color, label=label)
        margin = rows[attack].get("margin_over_gold")
        ax.set_title(
            f"{attack}\nworst margin over gold: " + ("n/a" if margin is None else f"{margin:+.2f}"), fontsize=9
        )
        ax.set_xticks(list(x), [_budget_label(p) for p in points], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("attack success")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("recovery attacks over the gate's budget grid (every point is gated)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
