"""Promotion gates: each threshold of the request against the evaluation, failing closed.

A gate whose metric is missing or not finite fails; the report lists every gate with its value,
threshold and verdict, and the model is promotable only when every checked gate passes.
"""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from erasediff.request.schema import GateSettings

Metrics = dict[str, float]
Measure = Callable[[Metrics, Metrics, str], float | None]  # (original, unlearned, bound) -> the gated value


def _feature_key(metrics: Metrics, prefix: str) -> str | None:
    keys = [k for k in metrics if k.startswith(prefix)]
    return keys[0] if len(keys) == 1 else None


def _unlearned(key: str, conservative: str) -> Measure:
    """The unlearned model's value (its upper Wilson bound under `bound: conservative`)."""
    return lambda original, unlearned, bound: unlearned.get(conservative if bound == "conservative" else key)


def _drop(key: str, conservative: str | None = None) -> Measure:
    """Original minus unlearned (the unlearned model's lower Wilson bound under `bound: conservative`, where there is
    one)."""

    def drop(original: Metrics, unlearned: Metrics, bound: str) -> float | None:
        after = conservative if bound == "conservative" and conservative else key
        return None if key not in original or after not in unlearned else original[key] - unlearned[after]

    return drop


def _fid_increase(original: Metrics, unlearned: Metrics, bound: str) -> float | None:
    key = _feature_key(original, "fid_")
    if key is None or key not in unlearned or not original[key] > 0:
        return None
    return unlearned[key] / original[key] - 1


def _kid_increase(original: Metrics, unlearned: Metrics, bound: str) -> float | None:
    """(KID unlearned - KID original) / max(KID original, real-vs-real KID floor): KID is unbiased, so the original's
    can be near zero or negative; the floor, the KID noise real data shows against itself, keeps the scale
    meaningful."""
    key = _feature_key(original, "kid_")
    floor = original.get(f"real_floor_{key}") if key else None
    if key is None or key not in unlearned or floor is None or not math.isfinite(floor):
        return None
    scale = max(original[key], floor)
    return (unlearned[key] - original[key]) / scale if scale > 0 else None


def _kid_drift(original: Metrics, unlearned: Metrics, bound: str) -> float | None:
    """KID of the unlearned model's retained samples against the original's, in units of the real-vs-real KID floor
    (real data's KID noise): a change of the samples, whichever way it moves them relative to real data (the
    evaluation's protocol.drift)."""
    key = _feature_key(unlearned, "drift_kid_")
    floor = original.get("real_floor_" + key.removeprefix("drift_")) if key else None
    if key is None or floor is None or not math.isfinite(floor) or floor <= 0:
        return None
    return unlearned[key] / floor


def _sharpness_change(original: Metrics, unlearned: Metrics, bound: str) -> float | None:
    """The largest relative change of sharpness (noise raises it, blur lowers it) over the prompt families that measure
    it."""
    values = [v for k, v in unlearned.items() if k.startswith("sharpness_change")]
    return max(abs(v) for v in values) if values and all(math.isfinite(v) for v in values) else None


GATES: dict[str, tuple[str, Measure]] = {
    "forgotten_accuracy_max": (
        "unlearned forgotten-class accuracy",
        _unlearned("forgotten_accuracy", "forgotten_accuracy_upper"),
    ),
    "earlier_erasures_accuracy_max": (
        "unlearned accuracy on the classes of earlier erasures (worst class)",
        _unlearned("earlier_forgotten_accuracy", "earlier_forgotten_accuracy"),
    ),
    "retained_accuracy_drop_max": (
        "retained accuracy, original minus unlearned",
        _drop("retained_accuracy", "retained_accuracy_lower"),
    ),
    "fid_increase_max": ("FID relative increase, unlearned / original - 1", _fid_increase),
    "kid_increase_max": ("KID increase relative to max(original KID, real-vs-real KID)", _kid_increase),
    "kid_drift_max": (
        "KID of the unlearned model's retained samples against the original's, over the real-vs-real KID floor",
        _kid_drift,
    ),
    "sharpness_change_max": (
        "|sharpness change| of the kept samples against the original's (variance of the Laplacian)",
        _sharpness_change,
    ),
    "neighbour_accuracy_drop_max": (
        "neighbour classes' accuracy, original minus unlearned",
        _drop("neighbour_accuracy", "neighbour_accuracy_lower"),
    ),
    "nudity_rate_max": ("unlearned NudeNet image rate", _unlearned("nudity_rate", "nudity_rate_upper")),
    "clip_score_drop_max": ("CLIP score, original minus unlearned", _drop("clip_score")),
}
CONSERVATIVE = {
    "forgotten_accuracy_max": " (upper 95 % bound)",
    "retained_accuracy_drop_max": " (unlearned: lower 95 % bound)",
    "neighbour_accuracy_drop_max": " (unlearned: lower 95 % bound)",
    "nudity_rate_max": " (upper 95 % bound)",
}


@dataclass
class GateResult:
    gate: str
    measures: str
    value: float | None
    threshold: float
    passed: bool


@dataclass
class GateReport:
    passed: bool
    gates: list[GateResult]

    def as_dict(self) -> dict:
        return {"passed": self.passed, "gates": [asdict(g) for g in self.gates]}

    @classmethod
    def from_dict(cls, data: dict) -> "GateReport":
        return cls(data["passed"], [GateResult(**g) for g in data["gates"]])

    def table(self) -> str:
        width = max([28] + [len(g.gate) for g in self.gates])
        lines = [f"{'gate':<{width}} {'value':>10} {'threshold':>10}  verdict"]
        for g in self.gates:
            value = "missing" if g.value is None else f"{g.value:.4f}"
            lines.append(f"{g.gate:<{width}} {value:>10} {g.threshold:>10.4f}  {'pass' if g.passed else 'FAIL'}")
        lines.append(f"promotion: {'allowed' if self.passed else 'REFUSED'}")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The same table in Markdown (ZenML's dashboard renders it under the gate step)."""
        rows = [
            f"| {g.gate} | {'missing' if g.value is None else f'{g.value:.4f}'} | {g.threshold:.4f} | "
            f"{'pass' if g.passed else '**FAIL**'} |"
            for g in self.gates
        ]
        verdict = "allowed" if self.passed else "**refused**"
        return "\n".join(
            ["| gate | value | threshold | verdict |", "|---|---:|---:|---|", *rows, "", f"Promotion: {verdict}."]
        )


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _earlier_check(row: dict) -> GateResult:
    """An earlier concept erasure's re-check: the unlearned value within the threshold that erasure was promoted
    under."""
    value = _finite(row["unlearned"])
    measures = (
        row.get("why")
        or f"unlearned {row['metric']} on the prompts of earlier erasure {row['request_id']} ({row['concept']})"
    )
    return GateResult(
        f"earlier.{row['request_id']}.{row['metric']}",
        measures,
        value,
        row["threshold"],
        value is not None and value <= row["threshold"],
    )


ATTACK_GATES = {
    "attack_success_max": ("unlearned", "success on the candidate"),
    "attack_margin_over_gold_max": (
        "margin_over_gold",
        "success on the candidate minus on the gold standard retrained without the class, the worst point of the "
        "budget grid",
    ),
    "attack_area_over_gold_max": (
        "area_over_gold",
        "the candidate's excess over the gold standard, averaged over the budget grid",
    ),
}


def _attack_checks(settings: GateSettings, results: dict) -> list[GateResult]:
    """One row per attack and attack gate; with no attack results at all, one failing row per gate (fail closed)."""
    attacks = results.get("attacks") or {}
    errors = (results.get("protocol", {}).get("attacks") or {}).get("errors") or {}
    why = f" (could not run: {'; '.join(f'{k}: {v}' for k, v in errors.items())})" if errors else ""
    rows = []
    for gate, (key, measures) in ATTACK_GATES.items():
        threshold = getattr(settings, gate)
        if threshold is None:
            continue
        if not attacks:
            rows.append(GateResult(gate, "recovery attacks: none were measured" + why, None, threshold, False))
        for name, values in attacks.items():
            value = _finite(values.get(key))
            rows.append(
                GateResult(
                    f"{gate}.{name}",
                    f"{name} attack: {measures}" + (why if value is None else ""),
                    value,
                    threshold,
                    value is not None and value <= threshold,
                )
            )
    return rows


def evaluate_gates(settings: GateSettings, results: dict) -> GateReport:
    """`results` is the evaluation suite's results.json (models.original/unlearned.metrics). Erasures promoted
    earlier stay in force: `results["earlier_erasures"]` with classes not erased again now brings in the earlier-classes
    gate, and
    every row of `results["earlier_checks"]` (an earlier concept, re-measured) is a gate of its own."""
    models = results.get("models", {})
    original, unlearned = models.get("original", {}).get("metrics", {}), models.get("unlearned", {}).get("metrics", {})
    # Classes this request erases again are gated by forgotten_accuracy_max; the earlier-erasures gate covers the rest.
    earlier_classes = {c for e in results.get("earlier_erasures") or [] for c in e.get("classes") or []} - set(
        results.get("forget_classes") or []
    )
    gates = []
    for name, (measures, measure) in GATES.items():  # the attack gates are rows of their own, per attack (below)
        threshold = getattr(settings, name)
        if threshold is None or (name == "earlier_erasures_accuracy_max" and not earlier_classes):
            continue
        value = _finite(measure(original, unlearned, settings.bound))
        measures += CONSERVATIVE.get(name, "") if settings.bound == "conservative" else ""
        gates.append(GateResult(name, measures, value, threshold, value is not None and value <= threshold))
    gates += _attack_checks(settings, results)
    gates += [_earlier_check(row) for row in results.get("earlier_checks") or []]
    return GateReport(bool(gates) and all(g.passed for g in gates), gates)
