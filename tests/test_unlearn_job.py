"""The pipeline's unlearning on curated sets: a retry resumes from the checkpoint the failed attempt left."""

import json
from pathlib import Path

import torch

from erasediff.curation.sets import load_curated_set, materialise_sets
from erasediff.defaults.resolve import model_path
from erasediff.method.targets.classes import unlearn_classes
from erasediff.models.class_model import META_FILE, load_class_model
from erasediff.request.schema import ErasureRequest
from erasediff.request.unlearn_curated import CURVES, METRICS, MODEL, unlearn_curated

REQUEST = ErasureRequest.model_validate(
    {
        "request": {"id": "REQ-job", "requester": "tests", "reason": "resume"},
        "target": {"classes": [4]},
        "unlearning": {"recipe": "paper", "advanced": {"steps": 6, "batch_size": 8, "forget_batch_size": 8}},
        "checkpoint_every": 3,
    }
)


def test_retry_resumes_and_matches_uninterrupted(tmp_path: Path) -> None:
    base = model_path("digits")
    sets = tmp_path / "sets"
    materialise_sets({"forget": "digits", "retain": "digits"}, [4], 16, sets, progress=False)
    straight = unlearn_curated(
        REQUEST, base, sets, tmp_path / "ck-straight", tmp_path / "straight", {"request_id": "REQ-job"}, progress=False
    )

    # A first attempt dies after its step-3 checkpoint; the retry finds it and runs steps 4..6 only.
    checkpoints = tmp_path / "ck-retry"
    forget, retain = (load_curated_set(sets, n, 1) for n in ("forget", "retain"))
    unlearn_classes(
        load_class_model(base), forget, retain, [4], REQUEST.unlearning, checkpoints, 3, stop_after=3, progress=False
    )
    steps: list[int] = []
    retried = unlearn_curated(
        REQUEST,
        base,
        sets,
        checkpoints,
        tmp_path / "retried",
        {"request_id": "REQ-job"},
        callback=lambda m: steps.append(m.step),
        progress=False,
    )
    assert steps == [4, 5, 6]
    assert not checkpoints.exists(), "checkpoints outlived a finished run"

    a, b = (load_class_model(p / MODEL).unet.state_dict() for p in (straight, retried))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (retried / CURVES).is_file() and len((retried / METRICS).read_text().splitlines()) == 3
    meta = json.loads((retried / MODEL / META_FILE).read_text())
    assert meta["lineage"]["request_id"] == "REQ-job" and meta["lineage"]["forget_classes"] == [4]


def test_a_retry_carries_the_whole_history(tmp_path: Path) -> None:
    """The first attempt logged steps 1..5 and died after its step-3 checkpoint: the retry hands the callback
    (the MLflow series) steps 1..3 from the log, then 4..6 as it runs them; the saved log has each step once,
    with the retry's values for the steps it replayed."""
    from erasediff.method.runtime.metrics_log import MetricsLog

    base, sets, checkpoints = model_path("digits"), tmp_path / "sets", tmp_path / "ck"
    materialise_sets({"forget": "digits", "retain": "digits"}, [4], 16, sets, progress=False)
    forget, retain = (load_curated_set(sets, n, 1) for n in ("forget", "retain"))
    checkpoints.mkdir()
    log = MetricsLog(checkpoints / METRICS)
    unlearn_classes(
        load_class_model(base),
        forget,
        retain,
        [4],
        REQUEST.unlearning,
        checkpoints,
        3,
        callback=log,
        stop_after=3,
        progress=False,
    )
    with open(log.path, "a") as handle:  # steps 4 and 5 were logged before the process died, without a checkpoint
        handle.writelines(json.dumps({**log.rows()[-1], "step": step, "retain_loss": -1.0}) + "\n" for step in (4, 5))
    seen: list[tuple[int, float]] = []
    retried = unlearn_curated(
        REQUEST,
        base,
        sets,
        checkpoints,
        tmp_path / "retried",
        {"request_id": "REQ-job"},
        callback=lambda m: seen.append((m.step, m.retain_loss)),
        progress=False,
    )
    assert [step for step, _ in seen] == [1, 2, 3, 4, 5, 6]
    rows = [json.loads(line) for line in (retried / METRICS).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # steps 4 and 5 once, not twice
    assert [r["retain_loss"] for r in rows] == [loss for _, loss in seen] and -1.0 not in [loss for _, loss in seen]
