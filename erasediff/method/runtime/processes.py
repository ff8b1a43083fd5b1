"""Data-parallel unlearning on one node: `accelerate launch` starts `unlearning.processes` copies of
the unlearning job (one per GPU; gloo processes on a CPU-only machine).

Every rank draws its own batches; `unlearn_unet` averages the gradients across ranks before
lambda_t is formed, so every rank applies the same update. Each rank writes a record (its lambda_t
series and a hash of its final weights); the launcher refuses a run whose ranks disagree, then
rank 0's model is the result. A worker's one-line error comes back as the same error class.

    python -m WORKER SPEC.json    (what `accelerate launch -m` runs on every rank; WORKER calls `run_rank`)
"""

import json
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator

from erasediff.util import errors
from erasediff.util.errors import DivergedError, ErasediffError
from erasediff.util.hashing import tensors_hash

SPEC, RANKS = "launch.json", "ranks"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mean_across_ranks(accelerator: Accelerator, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Every rank's gradients averaged, so every rank forms the same lambda_t and update."""
    return [accelerator.reduce(g, "mean") for g in grads]


def check_devices(processes: int) -> None:
    """One GPU per process where there are GPUs; a pod with fewer is a placement error, said before launching."""
    if torch.cuda.is_available() and torch.cuda.device_count() < processes:
        raise ErasediffError(
            f"unlearning.processes is {processes} but this node shows {torch.cuda.device_count()} GPU(s): "
            "raise the step's nvidia.com/gpu limit in the run config (configs/k8s_gpu.yaml) or lower "
            "unlearning.processes"
        )


def launch(spec: dict, processes: int, mixed_precision: str, workdir: Path, worker: str) -> list[dict]:
    """Run module `worker` on `processes` ranks with the job `spec` (its job's keyword arguments, as JSON);
    return every rank's record, after checking that all ranks ended with the same weights."""
    check_devices(processes)
    (workdir / RANKS).mkdir(parents=True, exist_ok=True)
    for stale in (workdir / RANKS).glob("*.json"):
        stale.unlink()
    (workdir / SPEC).write_text(json.dumps(spec))
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--main_process_port",
        str(_free_port()),
        "--mixed_precision",
        mixed_precision,
        "--dynamo_backend",
        "no",
        "-m",
        worker,
        str(workdir / SPEC),
    ]
    code = subprocess.run(command).returncode
    records = [json.loads(p.read_text()) for p in sorted((workdir / RANKS).glob("rank*.json"))]
    failures = [r for r in records if "error" in r]
    if failures:
        first = failures[0]
        kind = getattr(errors, first["error"], None)
        if isinstance(kind, type) and issubclass(kind, ErasediffError):
            raise kind(first["message"])
        raise ErasediffError(
            f"data-parallel unlearning failed on rank {first['rank']}: {first['error']}: {first['message']}"
        )
    if code != 0 or len(records) != processes:
        raise ErasediffError(
            f"data-parallel unlearning exited {code} with {len(records)} of {processes} ranks finished; see the worker "
            "output above"
        )
    if len({r["weights_sha256"] for r in records}) != 1:
        raise DivergedError(
            "data-parallel ranks ended with different weights "
            f"({', '.join(r['weights_sha256'][:12] for r in records)}): "
            "the gradient reduction did not keep them in step"
        )
    return records


def run_rank(job: Callable[..., torch.nn.Module], argv: list[str]) -> int:
    """One rank: run `job(**spec, rank_callback=...)`, write this rank's record (or its error) next to the spec."""
    from accelerate import PartialState

    spec_path = Path(argv[0])
    lambdas: list[float | None] = []
    try:
        unet = job(**json.loads(spec_path.read_text()), rank_callback=lambda m: lambdas.append(m.lambda_t))
        record = {"lambda_t": lambdas, "weights_sha256": tensors_hash(unet.state_dict())}
    except Exception as exc:  # noqa: BLE001 - every failure must reach the launcher as a record, not only a traceback
        if not isinstance(exc, ErasediffError):
            traceback.print_exc()
        record = {"error": type(exc).__name__, "message": " ".join(str(exc).split())}
    rank = PartialState().process_index  # after the run: the state is the one the unlearning loop set up
    (spec_path.parent / RANKS / f"rank{rank}.json").write_text(json.dumps({"rank": rank, **record}))
    return 2 if "error" in record else 0
