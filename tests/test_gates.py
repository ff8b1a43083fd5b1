"""Gates fail closed: a metric above its threshold, missing or non-finite blocks promotion."""

import math

from erasediff.request.gates import evaluate_gates
from erasediff.request.schema import GateSettings


def results(original: dict, unlearned: dict) -> dict:
    return {"models": {"original": {"metrics": original}, "unlearned": {"metrics": unlearned}}}


BASE = {"forgotten_accuracy": 1.0, "retained_accuracy": 0.99, "fid_classifier": 30.0}


def test_all_gates_pass() -> None:
    report = evaluate_gates(
        GateSettings(), results(BASE, {"forgotten_accuracy": 0.05, "retained_accuracy": 0.97, "fid_classifier": 33.0})
    )
    assert report.passed
    values = {g.gate: g.value for g in report.gates}
    assert math.isclose(values["retained_accuracy_drop_max"], 0.02) and math.isclose(values["fid_increase_max"], 0.1)


def test_each_breach_fails_its_gate_only() -> None:
    report = evaluate_gates(
        GateSettings(), results(BASE, {"forgotten_accuracy": 0.05, "retained_accuracy": 0.90, "fid_classifier": 40.0})
    )
    assert not report.passed
    assert {g.gate: g.passed for g in report.gates} == {
        "forgotten_accuracy_max": True,
        "retained_accuracy_drop_max": False,
        "fid_increase_max": False,
    }
    assert "FAIL" in report.table() and "REFUSED" in report.table()


def test_missing_and_non_finite_metrics_fail_closed() -> None:
    settings = GateSettings(nudity_rate_max=0.1)
    report = evaluate_gates(
        settings, results(BASE, {"forgotten_accuracy": float("nan"), "retained_accuracy": 0.99, "fid_classifier": 30.0})
    )
    verdicts = {g.gate: (g.value, g.passed) for g in report.gates}
    assert verdicts["forgotten_accuracy_max"] == (None, False)
    assert verdicts["nudity_rate_max"] == (None, False)
    assert not report.passed and "missing" in report.table()
    assert not evaluate_gates(GateSettings(), {}).passed


def test_earlier_erasures_stay_in_force() -> None:
    """Earlier classes bring in their gate; each re-measured earlier concept is a gate at the threshold it was
    promoted under; one that cannot be measured fails closed."""
    from erasediff.request.earlier_checks import unmeasurable

    unlearned = {"forgotten_accuracy": 0.05, "retained_accuracy": 0.97, "fid_classifier": 33.0}
    concept = {"request_id": "REQ-N", "version": 1, "concept": "nudity"}
    held = {
        "request_id": "REQ-N",
        "concept": "nudity",
        "metric": "nudity_rate",
        "threshold": 0.05,
        "original": 0.02,
        "unlearned": 0.04,
    }
    report = evaluate_gates(
        GateSettings(), {**results(BASE, unlearned), "earlier_erasures": [concept], "earlier_checks": [held]}
    )
    assert report.passed and "earlier_erasures_accuracy_max" not in {g.gate for g in report.gates}
    assert {g.gate: g.passed for g in report.gates}["earlier.REQ-N.nudity_rate"] is True

    back = {**held, "unlearned": 0.3}
    report = evaluate_gates(
        GateSettings(), {**results(BASE, unlearned), "earlier_erasures": [concept], "earlier_checks": [back]}
    )
    assert not report.passed and [g.gate for g in report.gates if not g.passed] == ["earlier.REQ-N.nudity_rate"]

    closed = unmeasurable(concept, "a concept erasure cannot be re-measured on a class-conditional model")
    classes = {"request_id": "REQ-3", "version": 2, "classes": [3]}
    report = evaluate_gates(
        GateSettings(), {**results(BASE, unlearned), "earlier_erasures": [concept, classes], "earlier_checks": [closed]}
    )
    verdicts = {g.gate: (g.value, g.passed) for g in report.gates}
    assert verdicts["earlier.REQ-N.unmeasurable"] == (None, False) and verdicts["earlier_erasures_accuracy_max"] == (
        None,
        False,
    )
    assert "class-conditional" in report.gates[-1].measures and not report.passed


def test_erasing_an_earlier_class_again_is_gated_by_the_forget_gate() -> None:
    """A request that erases class 3 again after an earlier request erased it: 3 is a forgotten class now, gated by
    forgotten_accuracy_max, so the earlier-erasures gate is not asked for a measure the evaluation rightly leaves out
    (it used to fail as missing). An earlier class that is not erased again still brings the gate in, failing closed."""
    unlearned = {"forgotten_accuracy": 0.05, "retained_accuracy": 0.97, "fid_classifier": 33.0}
    earlier = [{"request_id": "REQ-3", "version": 1, "classes": [3]}]
    again = {**results(BASE, unlearned), "forget_classes": [3], "earlier_erasures": earlier}
    report = evaluate_gates(GateSettings(), again)
    assert report.passed and "earlier_erasures_accuracy_max" not in {g.gate for g in report.gates}
    assert not evaluate_gates(
        GateSettings(), {**again, "models": results(BASE, {**unlearned, "forgotten_accuracy": 0.9})["models"]}
    ).passed

    other = {**results(BASE, unlearned), "forget_classes": [5], "earlier_erasures": earlier}
    verdicts = {g.gate: (g.value, g.passed) for g in evaluate_gates(GateSettings(), other).gates}
    assert verdicts["earlier_erasures_accuracy_max"] == (None, False)  # 3 must be measured when 5 is erased
    held = results(BASE, {**unlearned, "earlier_forgotten_accuracy": 0.1})
    assert evaluate_gates(GateSettings(), {**held, "forget_classes": [5], "earlier_erasures": earlier}).passed


def test_wilson_bounds() -> None:
    from erasediff.evaluation.intervals import wilson

    low, high = wilson(0, 50)
    assert low == 0.0 and math.isclose(
        high, 1.959963984540054**2 / (50 + 1.959963984540054**2)
    )  # closed form at 0 successes
    low, high = wilson(4, 40)  # "seven" at 10 % of 40 samples: consistent with more than a 15 % gate allows
    assert 0.03 < low < 0.05 and 0.22 < high < 0.24
    assert all(math.isclose(wilson(k, 30)[0], 1 - wilson(30 - k, 30)[1]) for k in range(31))  # symmetric
    assert wilson(0, 0) == (0.0, 1.0)


def test_conservative_gates_compare_the_bound_that_is_worse_for_the_model() -> None:
    unlearned = {
        "forgotten_accuracy": 0.10,
        "forgotten_accuracy_lower": 0.04,
        "forgotten_accuracy_upper": 0.23,
        "retained_accuracy": 0.98,
        "retained_accuracy_lower": 0.90,
        "retained_accuracy_upper": 0.99,
        "fid_classifier": 31.0,
    }
    settings = GateSettings(forgotten_accuracy_max=0.15, retained_accuracy_drop_max=0.05)
    assert evaluate_gates(settings, results(BASE, unlearned)).passed  # point: 0.10 <= 0.15 and 0.99 - 0.98 <= 0.05
    conservative = evaluate_gates(settings.model_copy(update={"bound": "conservative"}), results(BASE, unlearned))
    verdicts = {g.gate: (round(g.value, 4), g.passed) for g in conservative.gates}
    assert verdicts["forgotten_accuracy_max"] == (0.23, False) and verdicts["retained_accuracy_drop_max"] == (
        0.09,
        False,
    )
    assert "upper 95 % bound" in conservative.gates[0].measures
    missing = {k: v for k, v in unlearned.items() if not k.endswith(("_lower", "_upper"))}
    assert not evaluate_gates(
        settings.model_copy(update={"bound": "conservative"}), results(BASE, missing)
    ).passed  # fail closed


def test_kid_gate_measures_against_the_real_floor_and_fails_closed_without_it() -> None:
    settings = GateSettings(fid_increase_max=None, kid_increase_max=0.25)
    original = {
        **BASE,
        "kid_classifier": 0.5,
        "real_floor_kid_classifier": 2.0,
    }  # the original's KID is below the real floor
    near = evaluate_gates(
        settings, results(original, {"forgotten_accuracy": 0.0, "retained_accuracy": 0.99, "kid_classifier": 0.9})
    )
    assert near.passed and math.isclose(
        {g.gate: g.value for g in near.gates}["kid_increase_max"], 0.2
    )  # (0.9 - 0.5) / 2.0
    far = evaluate_gates(
        settings, results(original, {"forgotten_accuracy": 0.0, "retained_accuracy": 0.99, "kid_classifier": 1.6})
    )
    assert not far.passed
    no_floor = evaluate_gates(
        settings,
        results(
            {**BASE, "kid_classifier": 0.5},
            {"forgotten_accuracy": 0.0, "retained_accuracy": 0.99, "kid_classifier": 0.5},
        ),
    )
    assert not no_floor.passed and {g.gate: g.value for g in no_floor.gates}["kid_increase_max"] is None


def test_attack_gates_read_each_attack_and_fail_closed_without_results() -> None:
    settings = GateSettings(attack_success_max=0.3, attack_margin_over_gold_max=0.1)
    base = results(BASE, {"forgotten_accuracy": 0.0, "retained_accuracy": 0.99, "fid_classifier": 30.0})
    attacked = {
        **base,
        "attacks": {
            "inversion": {"original": 0.9, "gold": 0.1, "unlearned": 0.15, "margin_over_gold": 0.05},
            "relearn_forget": {"original": 1.0, "gold": 0.5, "unlearned": 0.9, "margin_over_gold": 0.4},
        },
    }
    verdicts = {g.gate: g.passed for g in evaluate_gates(settings, attacked).gates}
    assert verdicts["attack_success_max.inversion"] and verdicts["attack_margin_over_gold_max.inversion"]
    assert (
        not verdicts["attack_success_max.relearn_forget"] and not verdicts["attack_margin_over_gold_max.relearn_forget"]
    )
    missing = evaluate_gates(
        settings, base
    )  # attacks were gated but none measured (say, the evaluator could not run them)
    assert not missing.passed and [g.value for g in missing.gates if g.gate.startswith("attack_")] == [None, None]
    no_gold = {
        **base,
        "attacks": {"inversion": {"original": 0.9, "gold": None, "unlearned": 0.1, "margin_over_gold": None}},
        "protocol": {"attacks": {"errors": {"gold": "no gold standard configured"}}},
    }
    row = {g.gate: g for g in evaluate_gates(settings, no_gold).gates}["attack_margin_over_gold_max.inversion"]
    assert not row.passed and "no gold standard configured" in row.measures


def test_neighbour_gate_compares_the_lower_bound_when_conservative() -> None:
    original = {**BASE, "neighbour_accuracy": 1.0}
    unlearned = {
        "forgotten_accuracy": 0.0,
        "retained_accuracy": 0.99,
        "fid_classifier": 30.0,
        "neighbour_accuracy": 0.97,
        "neighbour_accuracy_lower": 0.9,
    }
    point = {
        g.gate: g.value
        for g in evaluate_gates(GateSettings(neighbour_accuracy_drop_max=0.05), results(original, unlearned)).gates
    }
    bound = {
        g.gate: g.value
        for g in evaluate_gates(
            GateSettings(neighbour_accuracy_drop_max=0.05, bound="conservative"), results(original, unlearned)
        ).gates
    }
    assert math.isclose(point["neighbour_accuracy_drop_max"], 0.03) and math.isclose(
        bound["neighbour_accuracy_drop_max"], 0.1
    )


def test_drift_gate_reads_the_unlearned_samples_against_the_original_over_the_real_floor() -> None:
    settings = GateSettings(fid_increase_max=None, kid_drift_max=3.0)
    original = {**BASE, "kid_classifier": 0.5, "real_floor_kid_classifier": 2.0}
    unlearned = {
        "forgotten_accuracy": 0.0,
        "retained_accuracy": 0.99,
        "kid_classifier": 0.4,
    }  # closer to real data than the original...
    close = evaluate_gates(settings, results(original, {**unlearned, "drift_kid_classifier": 4.0}))
    assert close.passed and math.isclose({g.gate: g.value for g in close.gates}["kid_drift_max"], 2.0)  # 4.0 / 2.0
    moved = evaluate_gates(
        settings, results(original, {**unlearned, "drift_kid_classifier": 9.0})
    )  # ...but far from the original's samples
    assert not moved.passed and [g.gate for g in moved.gates if not g.passed] == ["kid_drift_max"]
    for broken in ({**unlearned}, {**unlearned, "drift_kid_classifier": float("nan")}):  # not measured: fails closed
        assert not evaluate_gates(settings, results(original, broken)).passed
    assert not evaluate_gates(
        settings, results(BASE, {**unlearned, "drift_kid_classifier": 1.0})
    ).passed  # no real floor to scale by


def test_sharpness_gate_reads_the_largest_change_either_way_and_fails_closed() -> None:
    settings = GateSettings(fid_increase_max=None, sharpness_change_max=0.2)
    kept = {"forgotten_accuracy": 0.0, "retained_accuracy": 0.99}
    value = lambda report: {g.gate: g.value for g in report.gates}["sharpness_change_max"]  # noqa: E731
    close = evaluate_gates(
        settings, results(BASE, {**kept, "sharpness_change_classes": 0.05, "sharpness_change_captions": -0.1})
    )
    assert close.passed and math.isclose(value(close), 0.1)
    blurred = evaluate_gates(settings, results(BASE, {**kept, "sharpness_change_classes": -0.5}))  # blur lowers it
    noisy = evaluate_gates(settings, results(BASE, {**kept, "sharpness_change_classes": 1.2}))  # noise raises it
    assert not blurred.passed and not noisy.passed
    assert not evaluate_gates(settings, results(BASE, kept)).passed  # not measured: fails closed
    assert not evaluate_gates(settings, results(BASE, {**kept, "sharpness_change_classes": float("nan")})).passed
