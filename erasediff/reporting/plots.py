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
