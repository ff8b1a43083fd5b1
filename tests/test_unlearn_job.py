"""The pipeline's unlearning on curated sets: a retry resumes from the checkpoint the failed attempt left."""

import json
from pathlib import Path

import torch

from erasediff.curation.sets import load_curated_set, materialise_sets
from erasediff.defaults.resolve import model_path
from erasediff.method.class_erasure import unlearn_classes
from erasediff.models.class_model import META_FILE, load_class_model
from erasediff.request.schema import ErasureRequest
from erasediff.request.unlearn import CURVES, METRICS, MODEL, unlearn_curated

REQUEST = ErasureRequest.model_validate({
    "request": {"id": "REQ-job", "requester": "tests", "reason": "resume"}, "target": {"classes": [4]},
    "unlearning": {"steps": 6, "batch_size": 8, "forget_batch_size": 8}, "checkpoint_every": 3,
})


def test_retry_resumes_and_matches_uninterrupted(tmp_path: Path) -> None:
    base = model_path("digits")
    sets = tmp_path / "sets"
    materialise_sets({"forget": "digits", "retain": "digits"}, [4], 16, sets, progress=False)
    straight = unlearn_curated(REQUEST, base, sets, tmp_path / "ck-straight", tmp_path / "straight", {"request_id": "REQ-job"}, progress=False)

    # A first attempt dies after its step-3 checkpoint; the retry finds it and runs steps 4..6 only.
    checkpoints = tmp_path / "ck-retry"
    forget, retain = (load_curated_set(sets, n, 1) for n in ("forget", "retain"))
    unlearn_classes(load_class_model(base), forget, retain, [4], REQUEST.unlearning, checkpoints, 3, stop_after=3, progress=False)
    steps: list[int] = []
    retried = unlearn_curated(REQUEST, base, sets, checkpoints, tmp_path / "retried", {"request_id": "REQ-job"},
                              callback=lambda m: steps.append(m.step), progress=False)
    assert steps == [4, 5, 6]
    assert not checkpoints.exists(), "checkpoints outlived a finished run"

    a, b = (load_class_model(p / MODEL).unet.state_dict() for p in (straight, retried))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (retried / CURVES).is_file() and len((retried / METRICS).read_text().splitlines()) == 3
    meta = json.loads((retried / MODEL / META_FILE).read_text())
    assert meta["lineage"]["request_id"] == "REQ-job" and meta["lineage"]["forget_classes"] == [4]
