"""Per-step unlearning metrics as JSON lines; a resumed run overwrites the steps it replays."""

import json
from pathlib import Path

from erasediff.method.loop import StepMetrics


class MetricsLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __call__(self, metrics: StepMetrics) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(metrics.as_dict()) + "\n")

    def rows(self) -> list[dict[str, float]]:
        """One row per step, the latest written wins (a resumed run replays steps after its checkpoint)."""
        if not self.path.is_file():
            return []
        by_step = {}
        for line in self.path.read_text().splitlines():
            row = json.loads(line)
            by_step[row["step"]] = row
        return [by_step[s] for s in sorted(by_step)]
