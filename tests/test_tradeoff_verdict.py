"""The trade-off benchmark's verdict applies one rule to every method, EraseDiff included: forget on every seed and
keep retained accuracy within 5 points of the base. EraseDiff's own variants are never counted as baselines, and
NegGrad (with its retain descent term) is labelled NegGrad+."""

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from tradeoff import METHODS, Run, verdict  # noqa: E402


def run(method: str, seconds: float | None, retained: float, seed: int = 0) -> Run:
    return Run("digits", method, seed, 10, seconds, 0.1, retained, 5.0, 20.0, 1000.0, [])


BASE = {"digits": SimpleNamespace(retained=1.0)}


def test_erasediff_is_held_to_the_same_rule() -> None:
    runs = [run("erasediff", 5.0, 0.90), run("salun", 8.0, 0.99)]  # EraseDiff fast but 10 points down: it does not qualify
    assert verdict(runs, BASE) == ["digits: EraseDiff does not qualify (forgetting on every seed with retained accuracy within 5% of the base)"]
    runs = [run("erasediff", 5.0, 0.97), run("salun", 8.0, 0.99), run("neggrad+", 1.0, 0.40)]  # NegGrad+ wrecks retained accuracy
    assert verdict(runs, BASE) == ["digits: best qualifying baseline salun forgets in 8.0 s, EraseDiff in 5.0 s: 1.60x (not met, goal >= 2x)"]


def test_erasediff_variants_are_not_baselines_and_neggrad_is_labelled_plus() -> None:
    runs = [run("erasediff", 5.0, 0.99), run("erasediff-const", 1.0, 0.99), run("salun", 11.0, 0.99)]
    lines = verdict(runs, BASE)
    assert lines[0].endswith("2.20x (met, goal >= 2x)")  # salun, the only baseline, against EraseDiff; the variant has a line of its own
    assert lines[1] == "digits: best qualifying baseline salun forgets in 11.0 s, erasediff-const in 1.0 s: 11.00x (met, goal >= 2x)"
    assert "neggrad+" in METHODS and "neggrad" not in METHODS and METHODS["neggrad+"]["method"] == "neggrad"


def test_a_seed_that_never_forgets_disqualifies() -> None:
    runs = [run("erasediff", 5.0, 0.99), run("erasediff", None, 0.99, seed=1), run("salun", 8.0, 0.99)]
    assert verdict(runs, BASE)[0].startswith("digits: EraseDiff does not qualify")
