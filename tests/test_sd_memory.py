"""The SD memory accounting (benchmarks/sd_memory.py), kept in CI on SD 1.5's UNet at a tenth of its channel widths:
the same blocks, attention layout and 512 px latents, 10M parameters instead of 860M. Each configuration is measured
in its own process, as the benchmark measures it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from sd_memory import counted  # noqa: E402

pytestmark = pytest.mark.integration  # two child processes, about half a minute
PARTS = ("weights", "gradients", "optimizer states", "frozen original", "inner copy")
DIVISOR = 10


def measured(config: str) -> int:
    out = subprocess.run(
        [sys.executable, "benchmarks/sd_memory.py", "--one", config, "--width-divisor", str(DIVISOR)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak"]


def test_the_measured_peak_covers_the_counted_tensors_and_moves_with_them() -> None:
    """Counted weights, gradient buffers and optimizer states are a lower bound of the measured peak, and what the
    noxattn preset counts beyond xattn (four more trainable-sized tensors: two gradient buffers, two Adam states)
    shows up in the measurement: a count of tensors that do not exist would not."""
    peaks = {config: measured(config) for config in ("xattn", "noxattn")}
    totals = {config: sum(counted(config, DIVISOR)[k] for k in PARTS) for config in peaks}
    assert all(peaks[c] >= totals[c] for c in peaks), (peaks, totals)
    extra = totals["noxattn"] - totals["xattn"]
    assert counted("noxattn", DIVISOR)["trainable M"] > 3 * counted("xattn", DIVISOR)["trainable M"]
    assert peaks["noxattn"] - peaks["xattn"] >= 0.5 * extra, (peaks, totals)
