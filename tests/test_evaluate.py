"""`erasediff evaluate` on the digits models: accuracy sanity, the side-by-side table, grids, reproducibility,
errors."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from erasediff.cli import main
from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import split_forget_retain
from erasediff.evaluation.class_accuracy import class_scores, mean_accuracy, score_samples
from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.class_model import save_class_model

SMALL = {"samples_per_class": 8, "steps": 10, "seed": 7}


def test_accuracy_high_for_base_model_and_chance_for_noise(digits_model, digits_classifier) -> None:
    base = class_scores(digits_model, digits_classifier, EvalSettings(samples_per_class=10, steps=15), progress=False)
    assert mean_accuracy(base, list(range(10))) >= 0.9
    labels = torch.arange(10).repeat_interleave(30)
    noise = torch.rand(len(labels), 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert mean_accuracy(score_samples(digits_classifier, noise, labels), list(range(10))) <= 0.25  # chance is 0.10


@pytest.fixture(scope="module")
def unlearned_dir(digits_model, tmp_path_factory) -> Path:
    forget, retain = split_forget_retain(load_digits_split()[0], [3], 10)
    model = unlearn_classes(
        digits_model, forget, retain, [3], UnlearnSettings(steps=5, batch_size=16, forget_batch_size=16), progress=False
    )
    return save_class_model(model, tmp_path_factory.mktemp("unlearned") / "model")


def write_config(tmp_path: Path, **overrides) -> Path:
    config = {"forget_classes": [3], "generation": SMALL, **overrides}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_evaluate_prints_table_writes_grids_and_repeats_exactly(capsys, unlearned_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, fid={"cache_dir": str(tmp_path / "stats")})
    results = []
    for run in ("first", "second"):
        assert (
            main(
                [
                    "evaluate",
                    "--original",
                    "digits",
                    "--unlearned",
                    str(unlearned_dir),
                    "--config",
                    str(config),
                    "--out",
                    str(tmp_path / run),
                ]
            )
            == 0
        )
        results.append(json.loads((tmp_path / run / "results.json").read_text()))
    out = capsys.readouterr().out
    assert (
        "| metric | original | unlearned | delta |" in out
        and "| fid_classifier |" in out
        and "| forgotten_accuracy |" in out
    )

    first = tmp_path / "first"
    assert {p.name for p in (first / "grids").iterdir()} == {f"class-{c:02d}.png" for c in range(10)} | {
        "all-classes.png"
    }
    manifest = [json.loads(line) for line in (first / "samples-unlearned" / "manifest.jsonl").read_text().splitlines()]
    assert (
        len(manifest) == 80 and {m["seed"] for m in manifest} == {7} and len({m["model_sha256"] for m in manifest}) == 1
    )
    assert (first / "samples-unlearned" / manifest[0]["file"]).is_file()
    assert results[0]["models"] == results[1]["models"] and results[0]["delta"] == results[1]["delta"]
    assert results[0]["protocol"]["fid_classifier"]["features"] == "classifier"
    assert results[0]["models"]["original"]["sha256"] != results[0]["models"]["unlearned"]["sha256"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"fid": {"features": "inception", "inception_weights": "/nowhere/inception-2015-12-05.pt"}},
            "stage clean-fid's inception-2015-12-05.pt",
        ),
        ({"fid": {"features": "clip"}}, "fid.clip_model names no local CLIP folder"),
        ({"fid": {"features": "clip", "clip_model": "/nowhere/clip"}}, "model folder not found: /nowhere/clip"),
        ({"fid": {"min_reference": 5000}}, "fewer than the configured minimum 5000"),
        ({"forget_classes": [12]}, "forget class 12 is outside"),
    ],
    ids=["inception-missing", "clip-unset", "clip-missing", "reference-too-small", "bad-class"],
)
def test_evaluate_errors_are_one_clear_line(
    capsys, unlearned_dir: Path, tmp_path: Path, overrides: dict, message: str
) -> None:
    config = write_config(tmp_path, **overrides)
    code = main(
        [
            "evaluate",
            "--original",
            "digits",
            "--unlearned",
            str(unlearned_dir),
            "--config",
            str(config),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out" / "results.json").exists()


TINY_ATTACKS = {
    "k": 4,
    "samples": 8,
    "inversion_steps": 3,
    "relearn_steps": 2,
    "sweep": [0.0, 2.0],
    "sampling_steps": 3,
    "retain_images": 16,
}


def test_attacks_and_neighbours_in_the_evaluation(capsys, unlearned_dir: Path, tmp_path: Path) -> None:
    """Attacks run on original, gold and candidate (gold here: a local folder standing in for the retrained one), each
    with
    a grid; neighbours are measured apart; with no gold the margins are missing and say why (their gates fail
    closed)."""
    from erasediff.request.gates import evaluate_gates
    from erasediff.request.schema import GateSettings

    gates = GateSettings(attack_success_max=1.0, attack_margin_over_gold_max=1.0, neighbour_accuracy_drop_max=1.0)
    config = write_config(tmp_path, neighbours=[5, 8], attacks={**TINY_ATTACKS, "gold": str(unlearned_dir)})
    assert (
        main(
            [
                "evaluate",
                "--original",
                "digits",
                "--unlearned",
                str(unlearned_dir),
                "--config",
                str(config),
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert set(results["attacks"]) == {
        "inversion",
        "relearn_forget",
        "relearn_retain",
        "relearn_inverted",
        "guidance_sweep",
    }
    for values in results["attacks"].values():
        assert all(0 <= values[m] <= 1 for m in ("original", "gold", "unlearned"))
        margins = [p["unlearned"] - p["gold"] for p in values["curve"]]  # the worst point of the budget grid
        assert values["margin_over_gold"] == pytest.approx(max(margins))
        assert values["unlearned"] == max(p["unlearned"] for p in values["curve"])
    grids = {p.name for p in (tmp_path / "a" / "grids").iterdir()}
    assert {f"attack-{a}.png" for a in results["attacks"]} | {"attack-curves.png"} <= grids
    assert "neighbour_accuracy_lower" in results["models"]["unlearned"]["metrics"]
    assert results["protocol"]["attacks"]["settings"]["k"] == [4]
    attack_rows = [g for g in evaluate_gates(gates, results).gates if g.gate.startswith(("attack_", "neighbour_"))]
    assert len(attack_rows) == 1 + 2 * len(results["attacks"]) and all(g.passed for g in attack_rows)

    config = write_config(tmp_path, attacks={**TINY_ATTACKS, "attacks": ["relearn_forget"], "gold": None})
    assert (
        main(
            [
                "evaluate",
                "--original",
                "digits",
                "--unlearned",
                str(unlearned_dir),
                "--config",
                str(config),
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert (
        results["attacks"]["relearn_forget"]["gold"] is None
        and results["attacks"]["relearn_forget"]["margin_over_gold"] is None
    )
    verdicts = {g.gate: g for g in evaluate_gates(gates, results).gates}
    margin = verdicts["attack_margin_over_gold_max.relearn_forget"]
    assert not margin.passed and margin.value is None and "no gold standard configured" in margin.measures
    assert verdicts["attack_success_max.relearn_forget"].value is not None
