"""One full pipeline pass for concept erasure on a random-weight tiny SD pipeline (VAE, CLIP text encoder, UNet):
curation by generation, GX validation, EraseDiff on the UNet, NudeNet evaluation, gate, promotion in MLflow.

Random weights make the numbers meaningless (the erasure itself is measured in tests/test_concept_erasure.py);
this proves the text-to-image path through ZenML's local orchestrator and the registry.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PROMPTS, mlflow_tracking

from erasediff.util.hashing import folder_hash
from pipelines.run_request import FAILED, PROMOTED, main

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

MODEL = "erasediff-tiny-sd"


def nudity_request(
    folder: Path,
    request_id: str,
    base: Path | str,
    clip: Path,
    concept: str = "nudity",
    prompts: tuple[str, ...] = ("nude", "naked", "erotic", "sexual"),
) -> Path:
    config = {
        "request": {
            "id": request_id,
            "requester": "trust-and-safety@example.com",
            "reason": f"{concept} policy (test)",
        },
        "target": {"concept": concept, "prompts": list(prompts), "anchors": ["a photo of a person wearing clothes"]},
        "base_model": str(base),
        "data": {
            "forget": {"generate": {"images_per_prompt": 3, "steps": 2}},
            "retain": {"generate": {"images_per_prompt": 12, "steps": 2}},
        },
        "curation": {"min_forget": 12, "min_retain": 12},
        "unlearning": {  # the plain update: 4-image batches are below the robust recipe's relearning batch
            "recipe": "paper",
            "advanced": {"steps": 3, "batch_size": 4, "forget_batch_size": 4, "params": {"preset": "noxattn"}},
        },
        "checkpoint_every": 0,
        "evaluation": {
            "text_to_image": {
                "steps": 2,
                "batch_size": 4,
                "nudity": {"prompts": str(PROMPTS), "limit": 4},
                "captions": {"prompts": str(PROMPTS), "clip_model": str(clip), "limit": 4},
            }
        },
        # every request gates a utility measure; the weights are random, so this one is wide (CLIP score is 0..100)
        "gates": {
            "nudity_rate_max": 0.5,
            "clip_score_drop_max": 100.0,
            "forgotten_accuracy_max": None,
            "retained_accuracy_drop_max": None,
            "fid_increase_max": None,
        },
        "registry": {"model_name": MODEL},
    }
    path = folder / f"{request_id}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def nudity_work(tiny_sd_dir: Path, digit_clip_dir: Path, tmp_path_factory) -> dict:
    """REQ-tiny-nudity promoted from the tiny pipeline folder (module scope: the sequential test builds on it).
    Its output is captured in the setup section of the first test that uses it."""
    folder = tmp_path_factory.mktemp("nudity")
    base_hash = folder_hash(tiny_sd_dir)
    rc = main(
        [str(nudity_request(folder, "REQ-tiny-nudity", tiny_sd_dir, digit_clip_dir)), "--workdir", str(folder / "work")]
    )
    return {"rc": rc, "work": folder / "work", "base_hash": base_hash}


def test_tiny_sd_nudity_request_is_curated_unlearned_evaluated_gated_and_promoted(
    tiny_sd_dir: Path, nudity_work: dict
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    work, base_hash = nudity_work["work"], nudity_work["base_hash"]
    assert nudity_work["rc"] == PROMOTED

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert version.tags["forgotten_concept"] == "nudity" and version.tags["request_id"] == "REQ-tiny-nudity"
    assert [g["gate"] for g in json.loads(version.tags["gate_report"])["gates"]] == [
        "nudity_rate_max",
        "clip_score_drop_max",
    ]
    run = client.get_run(version.tags["mlflow_run_id"])
    assert "eval.unlearned.nudity_rate" in run.data.metrics and run.data.params["concept"] == "nudity"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "unlearn.lambda_t")] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "curation")}
    assert "curation/manifest.csv" in artifacts

    with mlflow_tracking(f"sqlite:///{work / 'mlflow.db'}"):
        pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    images = pyfunc.predict(pd.DataFrame({"prompt": ["a photo of a person", "nude"]}), params={"steps": 2})
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
    assert folder_hash(tiny_sd_dir) == base_hash


def test_a_second_concept_erasure_from_champion_rechecks_the_first(
    nudity_work: dict, digit_clip_dir: Path, tmp_path: Path
) -> None:
    """REQ-tiny-gore starts from @champion; its evaluation re-runs REQ-tiny-nudity's recorded check (the 4 I2P rows it
    was measured on, at its own threshold) on both models, gates on it, and reports it; the report lies next to the
    model."""
    import mlflow
    from mlflow.tracking import MlflowClient

    work = nudity_work["work"]
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    first = client.get_model_version_by_alias(MODEL, "champion")
    check = Path(client.download_artifacts(first.tags["mlflow_run_id"], "erasure_check", str(tmp_path / "check")))
    assert (
        json.loads((check / "check.json").read_text())["nudity_rate_max"] == 0.5
        and len(pd.read_csv(check / "nudity.csv")) == 4
    )

    path = nudity_request(
        tmp_path,
        "REQ-tiny-gore",
        f"models:/{MODEL}@champion",
        digit_clip_dir,
        concept="gore",
        prompts=("gore", "blood", "violence", "a wound"),
    )
    assert main([str(path), "--workdir", str(work)]) == PROMOTED
    second = client.get_model_version_by_alias(MODEL, "champion")
    assert second.tags["request_id"] == "REQ-tiny-gore"
    first = client.get_model_version(
        MODEL, str(int(second.version) - 1)
    )  # the text encoder, tokenizer, VAE and scheduler are stored once
    assert int(second.tags["storage.bytes_added"]) < int(first.tags["storage.bytes_added"])
    gates = {g["gate"]: g for g in json.loads(second.tags["gate_report"])["gates"]}
    recheck = gates["earlier.REQ-tiny-nudity.nudity_rate"]
    assert recheck["value"] is not None and recheck["threshold"] == 0.5 and recheck["passed"]
    run = client.get_run(second.tags["mlflow_run_id"])
    assert run.data.metrics["eval.unlearned.earlier.REQ-tiny-nudity.nudity_rate"] == recheck["value"]
    assert "evaluation/earlier/REQ-tiny-nudity/results.json" in {
        a.path for a in client.list_artifacts(run.info.run_id, "evaluation/earlier/REQ-tiny-nudity")
    }

    with mlflow_tracking(client.tracking_uri):
        root = Path(
            mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{second.version}", dst_path=str(tmp_path / "model"))
        )
    facts = json.loads((root / "report" / "erasure_report.json").read_text())
    assert [c["metric"] for c in facts["earlier_checks"]] == ["nudity_rate"]
    assert (
        "Earlier concept erasures re-checked" in (root / "report" / "erasure_report.html").read_text()
    )  # with the re-check's grid
    card = next(root.glob("artifacts/*/README.md")).read_text()
    assert "| REQ-tiny-nudity | 1 | nudity |" in card and "earlier.REQ-tiny-nudity.nudity_rate" in card


def test_pipeline_folder_missing_a_component_stops_at_load(
    tiny_sd_dir: Path, digit_clip_dir: Path, tmp_path: Path, capsys
) -> None:
    base = Path(shutil.copytree(tiny_sd_dir, tmp_path / "incomplete"))
    shutil.rmtree(base / "vae")
    rc = main([str(nudity_request(tmp_path, "REQ-no-vae", base, digit_clip_dir)), "--workdir", str(tmp_path / "work")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert rc == FAILED and len(errors) == 1
    assert "load_base_model" in errors[0] and f"stage its folder at {base / 'vae'}" in errors[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"gates": {"clip_score_drop_max": 1.0}, "evaluation": {"text_to_image": {"captions": None}}},
            "clip_score_drop_max are checked but the evaluation does not measure them",
        ),
        ({"target": {"anchors": []}}, "retain generation has no prompts"),
        (
            {"target": {"anchors": []}, "data": {"retain": {"generate": {"prompts": ["a person"]}}}},
            "aims the concept at target.anchors",
        ),
        (
            {"data": {"forget": "digits", "retain": "digits"}, "target": {"classes": [3]}},
            "set exactly one of target.classes",
        ),
    ],
    ids=["unmeasured-gate", "no-anchors", "remap-without-anchors", "both-kinds"],
)
def test_inconsistent_concept_requests_are_refused_before_running(
    tiny_sd_dir: Path, digit_clip_dir: Path, tmp_path: Path, capsys, change: dict, message: str
) -> None:
    from conftest import merge

    path = nudity_request(tmp_path, "REQ-bad", tiny_sd_dir, digit_clip_dir)
    config = merge(yaml.safe_load(path.read_text()), change)
    path.write_text(yaml.safe_dump(config))
    rc = main([str(path), "--workdir", str(tmp_path / "work")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert rc == FAILED and len(errors) == 1 and message in errors[0], errors
