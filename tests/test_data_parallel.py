"""Data-parallel unlearning: the pipeline's unlearning job under `accelerate launch` with 2 CPU (gloo) processes
forgets class 3 of the digits model as one process does at the same effective batch, and both ranks form the
same lambda_t at every step and end with the same weights. (No GPU here: the ranks are CPU processes; on a
GPU node the same launch puts one rank on each GPU.)"""

import json
from pathlib import Path

import pytest

from erasediff.curation.sets import materialise_sets
from erasediff.defaults.resolve import model_path
from erasediff.evaluation.class_accuracy import class_scores, mean_accuracy
from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.method.loop import StepMetrics
from erasediff.models.class_model import load_class_model
from erasediff.request.schema import ErasureRequest
from erasediff.request.unlearn_curated import METRICS, MODEL, RANKS, unlearn_curated
from erasediff.util.errors import ErasediffError

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

EFFECTIVE_BATCH, STEPS = 32, 30
EVAL = EvalSettings(samples_per_class=20, steps=20)


def request(processes: int) -> ErasureRequest:
    per_rank = EFFECTIVE_BATCH // processes
    return ErasureRequest.model_validate(
        {
            "request": {"id": f"REQ-dp{processes}", "requester": "tests", "reason": "data-parallel"},
            "target": {"classes": [3]},
            "unlearning": {
                "recipe": "paper",  # the plain update: what is checked here is the split, not the recipe
                "processes": processes,
                "advanced": {"steps": STEPS, "batch_size": per_rank, "forget_batch_size": per_rank},
            },
            "checkpoint_every": 0,
        }
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, tuple[Path, list[StepMetrics]]]:
    tmp = tmp_path_factory.mktemp("data-parallel")
    materialise_sets({"forget": "digits", "retain": "digits"}, [3], 16, tmp / "sets", progress=False)
    out = {}
    for processes in (1, 2):
        rows: list[StepMetrics] = []
        folder = unlearn_curated(
            request(processes),
            model_path("digits"),
            tmp / "sets",
            tmp / f"ck{processes}",
            tmp / f"out{processes}",
            {"request_id": f"REQ-dp{processes}"},
            callback=rows.append,
            progress=False,
        )
        out[processes] = (folder, rows)
    return out


def test_both_ranks_form_the_same_lambda_and_end_with_the_same_weights(runs) -> None:
    folder, rows = runs[2]
    ranks = json.loads((folder / RANKS).read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    assert len(ranks[0]["lambda_t"]) == STEPS and ranks[0]["lambda_t"] == ranks[1]["lambda_t"]
    assert any(lam > 0 for lam in ranks[0]["lambda_t"]), "adaptive lambda never engaged: the check above proves little"
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    # What the pipeline logs (rank 0's metrics, replayed to the MLflow callback) is that same series.
    assert [r.lambda_t for r in rows] == ranks[0]["lambda_t"]
    assert len((folder / METRICS).read_text().splitlines()) == STEPS


def test_two_processes_forget_like_one(runs, digits_classifier, digits_model) -> None:
    base = class_scores(digits_model, digits_classifier, EVAL, progress=False)
    scores = {
        n: class_scores(load_class_model(runs[n][0] / MODEL), digits_classifier, EVAL, progress=False) for n in (1, 2)
    }
    retained = [c for c in range(10) if c != 3]
    assert base[3].accuracy >= 0.9
    for n, s in scores.items():
        assert s[3].accuracy <= 0.5, f"{n} process(es): class 3 still drawn {s[3].accuracy:.0%} of the time"
        assert mean_accuracy(s, retained) >= mean_accuracy(base, retained) - 0.1
    assert abs(scores[1][3].accuracy - scores[2][3].accuracy) <= 0.3


def test_more_processes_than_gpus_is_refused_before_launch(monkeypatch) -> None:
    """The GPU count is faked (no GPU here): 4 processes on a node that shows 2 GPUs."""
    from erasediff.method.runtime import processes as data_parallel

    monkeypatch.setattr(data_parallel.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(data_parallel.torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ErasediffError, match="processes is 4 but this node shows 2 GPU"):
        data_parallel.check_devices(4)


def test_a_worker_error_comes_back_as_one_line(tmp_path: Path) -> None:
    """A rank that fails (here: the sets folder is missing) reports its error; nothing is left looking complete."""
    with pytest.raises(ErasediffError) as failure:
        unlearn_curated(
            request(2),
            model_path("digits"),
            tmp_path / "no-sets",
            tmp_path / "ck",
            tmp_path / "out",
            {},
            progress=False,
        )
    assert "\n" not in str(failure.value) and "no-sets" in str(failure.value)
    assert not (tmp_path / "out").exists()
