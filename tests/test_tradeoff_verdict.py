"""The trade-off benchmark's verdict applies one rule to every method, EraseDiff included: forget on every seed, keep
retained accuracy within 5 points of the base, and pass the request's FID/KID gates on every seed; each method is
judged at its fastest qualifying learning rate. EraseDiff's own variants are never counted as baselines, and NegGrad
(with its retain descent term) is labelled NegGrad+."""

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from tradeoff import METHODS, Run, verdict  # noqa: E402

RULE = "forgetting on every seed and at the judgement, retained accuracy within 5% of the base"


def run(
    method: str, seconds: float | None, retained: float, seed: int = 0, scale: float = 1.0, quality_ok: bool = True
) -> Run:
    return Run(
        "digits",
        method,
        seed,
        10,
        seconds,
        0.1,
        retained,
        5.0,
        20.0,
        1000.0,
        [],
        scale,
        {"kid_increase_max": 0.0},
        quality_ok,
    )


BASE = {"digits": SimpleNamespace(retained=1.0)}


def test_erasediff_is_held_to_the_same_rule() -> None:
    runs = [
        run("erasediff", 5.0, 0.90),
        run("salun", 8.0, 0.99),
    ]  # EraseDiff fast but 10 points down: it does not qualify
    assert verdict(runs, BASE) == [
        f"digits: EraseDiff does not qualify ({RULE}, FID/KID gates on every seed); best qualifying baseline salun "
        "forgets in 8.0 s"
    ]
    runs = [
        run("erasediff", 5.0, 0.97),
        run("salun", 8.0, 0.99),
        run("neggrad+", 1.0, 0.40),
    ]  # NegGrad+ wrecks retained accuracy
    assert verdict(runs, BASE) == [
        "digits: best qualifying baseline salun forgets in 8.0 s, erasediff in 5.0 s: 1.60x (not met, goal >= 2x)"
    ]


def test_erasediff_variants_are_not_baselines_and_neggrad_is_labelled_plus() -> None:
    runs = [run("erasediff", 5.0, 0.99), run("erasediff-const", 1.0, 0.99), run("salun", 11.0, 0.99)]
    lines = verdict(runs, BASE)
    assert lines[0].endswith(
        "2.20x (met, goal >= 2x)"
    )  # salun, the only baseline, against EraseDiff; the variant has a line of its own
    assert (
        lines[1]
        == "digits: best qualifying baseline salun forgets in 11.0 s, erasediff-const in 1.0 s: 11.00x (met, goal >= "
        "2x)"
    )
    assert "neggrad+" in METHODS and "neggrad" not in METHODS and METHODS["neggrad+"]["method"] == "neggrad"


def test_a_seed_that_never_forgets_disqualifies() -> None:
    runs = [run("erasediff", 5.0, 0.99), run("erasediff", None, 0.99, seed=1), run("salun", 8.0, 0.99)]
    assert verdict(runs, BASE)[0].startswith("digits: EraseDiff does not qualify")


def test_one_seed_outside_the_fid_kid_gates_disqualifies_and_the_rule_without_gates_says_what_changes() -> None:
    runs = [
        run("erasediff", 5.0, 0.99),
        run("erasediff", 5.0, 0.99, seed=1),
        run("salun", 4.0, 0.99),
        run("salun", 4.0, 0.99, seed=1, quality_ok=False),
    ]
    assert verdict(runs, BASE) == [
        f"digits: no baseline qualifies ({RULE}, FID/KID gates on every seed); erasediff forgets in 5.0 s"
    ]
    assert verdict(runs, BASE, gates=False) == [
        "digits: best qualifying baseline salun forgets in 4.0 s, erasediff in 5.0 s: 0.80x (not met, goal >= 2x)"
    ]


def test_each_method_is_judged_at_its_fastest_qualifying_learning_rate() -> None:
    runs = [
        run("erasediff", 6.0, 0.99),
        run("erasediff", 2.0, 0.99, scale=4.0),
        run("erasediff", 1.0, 0.99, scale=8.0, quality_ok=False),
        run("salun", 3.0, 0.99, scale=2.0, quality_ok=False),
        run("salun", 9.0, 0.99, scale=0.5),
    ]
    assert verdict(runs, BASE) == [
        "digits: best qualifying baseline salun lr x0.5 forgets in 9.0 s, erasediff lr x4 in 2.0 s: 4.50x (met, goal "
        ">= 2x)"
    ]


def test_a_probe_that_read_forgotten_on_too_few_samples_does_not_count() -> None:
    runs = [run("erasediff", 5.0, 0.99), run("salun", 4.0, 0.99)]
    runs[1].forgotten = 0.225  # the probe's 15 samples said forgotten; the judgement's larger sample says 22.5 %
    assert verdict(runs, BASE) == [
        f"digits: no baseline qualifies ({RULE}, FID/KID gates on every seed); erasediff forgets in 5.0 s"
    ]
