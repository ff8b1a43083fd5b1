"""Requests started at the same moment, as separate processes on one fresh work folder (the embedded default):
two different requests into one registered model are never both promoted blind, and the same request id started
twice runs once (the second start is refused at once, with one line)."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import merge

from erasediff.util.locks import is_held
from pipelines.run_request import request_lock

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

ROOT = Path(__file__).parents[1]
MODEL = "erasediff-concurrent"
FAST = {
    "unlearning": {"recipe": "paper", "advanced": {"steps": 80}},
    "checkpoint_every": 40,
    "evaluation": {"generation": {"samples_per_class": 20, "steps": 10}, "attacks": None, "neighbours": []},
    "registry": {
        "model_name": MODEL
    },  # 20 samples a class: too few for the conservative bound and the KID gate; no attacks here
    "gates": {
        "bound": "point",
        "kid_increase_max": None,
        "neighbour_accuracy_drop_max": None,
        "attack_margin_over_gold_max": None,
        "fid_increase_max": 0.5,
    },
}  # FID of 180 samples moves ~25 % between models (tests/test_compliance.py does the same)


def write_request(folder: Path, request_id: str, forget: int) -> Path:
    config = merge(
        merge(yaml.safe_load((ROOT / "configs" / "request_digits_forget_3.yaml").read_text()), FAST),
        {"request": {"id": request_id}, "target": {"classes": [forget]}},
    )
    path = folder / f"{request_id}-{forget}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_concurrent_requests_are_serialized(tmp_path: Path) -> None:
    work = tmp_path / "work"  # fresh: the stores are created by whichever process gets there first
    a, b = write_request(tmp_path, "REQ-X", 3), write_request(tmp_path, "REQ-Y", 5)
    started = [
        subprocess.Popen(
            [sys.executable, "run.py", str(path), "--workdir", str(work)],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for path in (a, b)
    ]
    deadline = time.monotonic() + 300
    while not all(
        is_held(request_lock(work, rid)) for rid in ("REQ-X", "REQ-Y")
    ):  # both running before the twin starts
        assert all(p.poll() is None for p in started) and time.monotonic() < deadline, (
            "a request ended before it took its lock"
        )
        time.sleep(0.1)
    twin = subprocess.run(
        [sys.executable, "run.py", str(a), "--workdir", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outs = [p.communicate(timeout=900) for p in started]
    codes = [p.returncode for p in started]
    log = "\n".join(f"--- exit {c}\n{o[-1500:]}\n{e[-1500:]}" for c, (o, e) in zip(codes, outs))

    # the same id twice: the second start is refused at once, in one line, exit 2 (never 1)
    assert twin.returncode == 2, twin.stderr[-2000:]
    assert [line for line in twin.stderr.splitlines() if line.strip()] == [
        next(line for line in twin.stderr.splitlines() if line.startswith("error:"))
    ]
    assert re.match(r"error: request REQ-X is already running: its lock is held by pid \d+$", twin.stderr.strip())

    # two different requests into one model: exactly one promoted; the other gated out (exit 1) against it, or as stale
    assert sorted(codes) == [0, 1], log
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == 1, log
    winner = versions[0].tags["request_id"]
    loser_out = outs[1 if winner == "REQ-X" else 0]
    assert "earlier_erasures" in loser_out[0] + loser_out[1], log  # refused because of the winner's erasure
    locks = [m.name for m in client.search_registered_models() if ".promotion-lock" in m.name]
    # the lock was released: free beside the marker of its creation, nobody's held name left
    assert sorted(locks) == [f"{MODEL}.promotion-lock", f"{MODEL}.promotion-lock.created"]


def test_a_killed_run_is_reported_interrupted_and_resumes_with_its_whole_history(tmp_path: Path) -> None:
    """kill -9 during unlearning, after a checkpoint: `request status` says interrupted (resumable), not running;
    the same request run again resumes, is promoted once, ends the dead MLflow run as KILLED, and the promoting run's
    metric series holds every unlearning step, not only those after the resume."""
    import json
    import signal

    from mlflow.tracking import MlflowClient

    work, request = tmp_path / "work", write_request(tmp_path, "REQ-K", 3)
    victim = subprocess.Popen(
        [sys.executable, "run.py", str(request), "--workdir", str(work)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not list((work / "checkpoints").glob("REQ-K-*/step-*/state.json")):
        assert victim.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)

    status = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "request", "status", "REQ-K", "--workdir", str(work), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert status.returncode == 0, status.stderr[-2000:]
    assert json.loads(status.stdout.strip().splitlines()[-1])["state"] == "interrupted (resumable)"

    rerun = subprocess.run(
        [sys.executable, "run.py", str(request), "--workdir", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    (version,) = client.search_model_versions(f"name = '{MODEL}'")
    runs = client.search_runs([client.get_experiment_by_name("erasediff").experiment_id], "tags.request_id = 'REQ-K'")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    history = client.get_metric_history(version.tags["mlflow_run_id"], "unlearn.retain_loss")
    assert sorted(m.step for m in history) == list(range(1, FAST["unlearning"]["advanced"]["steps"] + 1))
