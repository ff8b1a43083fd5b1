"""Recovery attacks on a text-to-image pipeline (paraphrases, concept inversion, prompt search) on the embedded tiny
model:
they never change its weights, record their budget, and fail their gates closed when the gold standard is missing.
How well they succeed on original, gold and candidates is measured by benchmarks/robustness.py --task text."""

import csv
import shutil
from pathlib import Path

import pytest
import torch

from erasediff.attacks.gold import retrained_text_gold
from erasediff.attacks.prompt_attacks import (
    DIGIT_PARAPHRASES,
    PromptAttackSettings,
    _ids,
    load_paraphrases,
    run_prompt_attacks,
)
from erasediff.attacks.record import AttackResult
from erasediff.comparison.attacks import attacker_images, class_score, evaluate_prompt_attacks, nudity_score
from erasediff.comparison.eval_config import ClassPromptSettings, PromptEvalConfig
from erasediff.defaults.text_digits import digit_captions, digit_paraphrase_rows, text_digits_default
from erasediff.models.text_encoding import encode_images
from erasediff.models.text_pipeline import load_text_to_image
from erasediff.request.gates import evaluate_gates
from erasediff.request.schema import GateSettings
from erasediff.util.cache import PACKAGED_ROOT
from erasediff.util.errors import ErasediffError
from erasediff.util.hashing import tensors_hash

TINY = PromptAttackSettings(
    k=4,
    samples=8,
    inversion_steps=[2, 4],
    relearn_steps=[1, 2],
    search_steps=[1, 2],
    paraphrase_prompts=[1],
    search_tokens=2,
    search_noise=1,
    inversion_template="a photo of the digit {}",
)


@pytest.fixture(scope="module")
def pipe():
    return load_text_to_image(text_digits_default(progress=False))


def test_the_shipped_paraphrases_are_what_the_module_writes_and_none_was_trained_on() -> None:
    with open(DIGIT_PARAPHRASES, newline="") as handle:
        shipped = [(r["prompt"], int(r["evaluation_seed"]), int(r["class"])) for r in csv.DictReader(handle)]
    assert shipped == [(row.prompt, row.seed, digit) for row, digit in digit_paraphrase_rows()]
    trained = {caption for caption, _ in digit_captions()}
    assert not trained & {prompt for prompt, _, _ in shipped}  # held out: the model and the erasure never saw them
    assert {r.label for r in load_paraphrases(PromptAttackSettings(), [7])} == {7}


def test_attack_prompts_are_encoded_as_the_pipeline_encodes_them(pipe) -> None:
    prompt = "a photo of the digit seven"
    expected = pipe.encode_prompt(
        prompt=[prompt], device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False
    )[0]
    assert torch.allclose(pipe.text_encoder(_ids(pipe, prompt))[0], expected)


def test_every_attack_leaves_the_weights_alone_and_records_its_budget(pipe, digits_classifier) -> None:
    latents = encode_images(pipe, attacker_images(TINY, 16, [7]), progress=False)
    before = tensors_hash({**pipe.unet.state_dict(), **pipe.text_encoder.state_dict()})
    results = run_prompt_attacks(
        pipe,
        "a photo of the digit seven",
        load_paraphrases(TINY, [7])[:8],
        latents,
        class_score(digits_classifier, [7]),
        TINY,
        5,
        4.0,
    )
    assert tensors_hash({**pipe.unet.state_dict(), **pipe.text_encoder.state_dict()}) == before
    assert set(results) == {"paraphrase", "inversion", "prompt_search", "relearn_forget"}
    budgets = {name: [{k: v for k, v in p.items() if k != "success"} for p in r.curve] for name, r in results.items()}
    assert budgets == {  # every attack read over its grid, each point once
        "paraphrase": [{"prompts": 1}, {"prompts": 2}],  # the first paraphrase, then both of the 8 rows' two
        "inversion": [{"steps": 2}, {"steps": 4}],
        "relearn_forget": [{"k": 4, "steps": 1, "lr": 1e-4}, {"k": 4, "steps": 2, "lr": 1e-4}],
        "prompt_search": [{"steps": 1, "candidates": 32}, {"steps": 2, "candidates": 32}],
    }
    for name, result in results.items():
        assert result.success == max(p["success"] for p in result.curve), name  # the attacker's best budget
        assert 0.0 <= result.success <= 1.0 and result.samples.shape[1:] == (3, 16, 16), name
    assert results["inversion"].protocol["k"] == 4 and results["inversion"].protocol["steps"] == [2, 4]
    search = results["prompt_search"].protocol
    found = search["found_prompts"][32]
    assert found.endswith("a photo of the digit seven") and len(found.split()) == 2 + 6
    curve = search["loss_curves"][32]
    assert len(curve) == 3 and all(
        b <= a + 1e-6 for a, b in zip(curve, curve[1:])
    )  # the current token is always a candidate

    # one run read at several budgets reads what a run of that budget alone gives; a k of the grid relearns on the
    # attacker's first k images, and the k=4 run of a k grid is the run of k=4 alone
    alone = run_prompt_attacks(
        pipe,
        "a photo of the digit seven",
        load_paraphrases(TINY, [7])[:8],
        latents,
        class_score(digits_classifier, [7]),
        TINY.model_copy(
            update={
                "attacks": ["inversion", "relearn_forget"],
                "inversion_steps": [4],
                "relearn_steps": [2],
                "k": [2, 4],
            }
        ),
        5,
        4.0,
    )
    assert alone["inversion"].curve[0]["success"] == results["inversion"].curve[1]["success"]
    assert [(p["k"], p["steps"]) for p in alone["relearn_forget"].curve] == [(2, 2), (4, 2)]
    assert alone["relearn_forget"].curve[1]["success"] == results["relearn_forget"].curve[1]["success"]
    assert alone["relearn_forget"].protocol["k"] == [2, 4]


def test_a_missing_gold_fails_the_margin_gates_closed(pipe, digits_classifier, tmp_path: Path) -> None:
    settings = TINY.model_copy(update={"attacks": ["paraphrase"], "gold": str(tmp_path / "no-such-gold")})
    attacked = evaluate_prompt_attacks(
        {"original": pipe, "unlearned": pipe},
        text_digits_default(),
        "a photo of the digit seven",
        load_paraphrases(settings, [7])[:8],
        class_score(digits_classifier, [7]),
        [7],
        settings,
        5,
        4.0,
        tmp_path / "grids",
        progress=False,
    )
    row = attacked["attacks"]["paraphrase"]
    assert row["gold"] is None and row["margin_over_gold"] is None and row["original"] == row["unlearned"]
    assert "gold" in attacked["protocol"]["errors"] and (tmp_path / "grids" / "attack-paraphrase.png").is_file()
    results = {
        "models": {"original": {"metrics": {}}, "unlearned": {"metrics": {}}},
        "forget_classes": [7],
        **attacked,
        "protocol": {"attacks": attacked["protocol"]},
    }
    gate = next(
        g
        for g in evaluate_gates(GateSettings(attack_margin_over_gold_max=0.1), results).gates
        if g.gate.startswith("attack_margin")
    )
    assert not gate.passed and gate.value is None and "could not run" in gate.measures


def test_the_text_gold_ships_for_seven_and_is_refused_for_other_bases(tmp_path: Path) -> None:
    base = text_digits_default(progress=False)
    assert retrained_text_gold(base, [7]).parent == PACKAGED_ROOT  # no training in the tests
    copy = Path(
        shutil.copytree(base, tmp_path / "copy")
    )  # what a pipeline step is handed: the embedded model, elsewhere
    assert retrained_text_gold(copy, [7]) == retrained_text_gold(base, [7])
    (copy / "unet" / "config.json").write_text("{}")
    with pytest.raises(ErasediffError, match="embedded text-digits model only"):
        retrained_text_gold(copy, [7])


def test_text_attacks_are_scored_by_the_classes_evaluator_or_nudenet() -> None:
    with pytest.raises(ValueError, match="classes evaluator or by NudeNet"):
        PromptEvalConfig(captions={"prompts": "c.csv", "clip_model": "clip"}, attacks={})
    with pytest.raises(ValueError, match="attacks.paraphrases"):
        PromptEvalConfig(nudity={"prompts": "x.csv"}, attacks={})
    with pytest.raises(ValueError, match="folder of the concept's images"):
        PromptEvalConfig(nudity={"prompts": "x.csv"}, attacks={"paraphrases": "p.csv"})
    assert PromptEvalConfig(
        nudity={"prompts": "x.csv"}, attacks={"attacks": ["paraphrase"], "paraphrases": "p.csv"}
    ).attacks.k == [8]
    assert PromptEvalConfig(classes=ClassPromptSettings(prompts="x.csv", forget_classes=[7]), attacks={}).attacks.k == [
        8
    ]


def test_the_nudenet_score_reads_the_real_detector_and_leaves_no_scratch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ERASEDIFF_SCRATCH", str(tmp_path / "scratch"))
    digits = attacker_images(TINY, 64, [7])
    assert nudity_score(0.6)(digits) == 0.0  # handwritten sevens show nothing NudeNet flags
    assert list((tmp_path / "scratch").iterdir()) == []


def test_relearning_trains_the_unet_in_place_and_restores_it_however_it_ends(
    pipe, digits_classifier, tmp_path: Path, monkeypatch
) -> None:
    """No copy of the UNet is held beside Adam's states: the weights go to a scratch file and come back after each
    run, after a failing one too, and the scratch file goes; gradient checkpointing reads the same curve."""
    monkeypatch.setenv("ERASEDIFF_SCRATCH", str(tmp_path / "scratch"))
    latents = encode_images(pipe, attacker_images(TINY, 16, [7]), progress=False)
    before = tensors_hash(pipe.unet.state_dict())
    score = class_score(digits_classifier, [7])
    settings = TINY.model_copy(update={"attacks": ["relearn_forget"], "k": [2, 4]})

    def attack(score, **update) -> AttackResult:
        return run_prompt_attacks(
            pipe, "a photo of the digit seven", [], latents, score, settings.model_copy(update=update), 5, 4.0
        )["relearn_forget"]

    def failing(images: torch.Tensor) -> float:
        raise RuntimeError("the scorer failed mid-attack")

    with pytest.raises(RuntimeError, match="mid-attack"):
        attack(failing)
    assert tensors_hash(pipe.unet.state_dict()) == before and not any(p.requires_grad for p in pipe.unet.parameters())
    assert list((tmp_path / "scratch").iterdir()) == []
    plain = attack(score)
    assert tensors_hash(pipe.unet.state_dict()) == before
    checkpointed = attack(score, gradient_checkpointing=True)
    assert not pipe.unet.is_gradient_checkpointing and tensors_hash(pipe.unet.state_dict()) == before
    assert checkpointed.curve == plain.curve and len(plain.curve) == 4
    assert checkpointed.protocol["final_loss"] == pytest.approx(plain.protocol["final_loss"], rel=1e-5)
    assert list((tmp_path / "scratch").iterdir()) == []
