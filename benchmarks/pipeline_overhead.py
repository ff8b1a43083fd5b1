"""Wall time of the default erasure pipeline and the share spent outside the steps' own compute.

Runs, in fresh processes on this machine, (a) `run.py` on the default request (ZenML local orchestrator,
MLflow tracking, registry) and (b) the same library calls with no ZenML and no MLflow: curation with
Great Expectations, EraseDiff, evaluation, gates. Overhead = (a - b) / a: orchestration, tracking,
artifact copies and their imports. ZenML's store is created before timing (first use happens once).
Targets (issue 4): (a) <= 10 minutes on 2 cores, overhead <= 15 %.

    python benchmarks/pipeline_overhead.py [--request configs/request_digits_forget_3.yaml]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def direct(request_path: Path, out: Path) -> None:
    """The pipeline's compute, called straight from the library."""
    from erasediff.comparison.class_models import evaluate_pair
    from erasediff.defaults.resolve import model_path
    from erasediff.models.class_model import load_class_model
    from erasediff.request.curate import curate_request
    from erasediff.request.gates import evaluate_gates
    from erasediff.request.schema import load_request
    from erasediff.request.unlearn_curated import MODEL, unlearn_curated
    from erasediff.util.hashing import folder_hash

    clock, phases = time.perf_counter(), {}

    def lap(name: str) -> None:
        nonlocal clock
        phases[name], clock = time.perf_counter() - clock, time.perf_counter()

    req = load_request(request_path)
    base = model_path(req.base_model)
    load_class_model(base)
    base_hash = folder_hash(base)
    lap("load_base_model")
    curate_request(req, base, out / "sets").raise_on_failure()
    lap("curate_sets")
    unlearned = unlearn_curated(
        req, base, out / "sets", out / "checkpoints", out / "unlearned", {"base_model_sha256": base_hash}
    )
    lap("unlearn_model")
    results = evaluate_pair(base, unlearned / MODEL, req.eval_config(), out / "evaluation")
    lap("evaluate_models")
    evaluate_gates(req.gates, results)
    lap("gate")
    (out / "phases.json").write_text(json.dumps(phases))


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def step_seconds(workdir: Path) -> dict[str, float]:
    os.environ["ZENML_CONFIG_PATH"] = str(workdir / "zenml")
    from zenml.client import Client

    run = Client().list_pipeline_runs(sort_by="desc:created", size=1, hydrate=True).items[0]
    return {name: (s.end_time - s.start_time).total_seconds() for name, s in run.steps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--request", type=Path, default=ROOT / "configs" / "request_digits_forget_3.yaml")
    parser.add_argument("--direct", type=Path, help=argparse.SUPPRESS)  # internal: run (b) into this folder
    args = parser.parse_args()
    if args.direct:
        return direct(args.request, args.direct)

    work = Path(tempfile.mkdtemp(prefix="erasediff-bench-"))
    config = yaml.safe_load(args.request.read_text())
    config["request"]["id"] = f"BENCH-{int(time.time())}"
    request = work / "request.yaml"
    request.write_text(yaml.safe_dump(config))
    env = {**os.environ, "ERASEDIFF_HOME": str(work), "ZENML_CONFIG_PATH": str(work / "zenml")}
    setup = (
        "from erasediff.util.offline import go_offline; go_offline(); from pathlib import Path; "
        "from mlflow_adapters.store import open_experiment; from pipelines.run_request import tracking_uri; from "
        "pipelines.stacks.select import ensure_local_stack; "
        f"w = Path({str(work)!r}); u = tracking_uri(None, w); open_experiment(u, 'erasediff', w / 'mlartifacts'); "
        "ensure_local_stack(u)"
    )
    first_use = timed([sys.executable, "-c", setup], env)
    pipeline = timed([sys.executable, "run.py", str(request), "--workdir", str(work)], env)
    library = timed([sys.executable, __file__, "--request", str(request), "--direct", str(work / "direct")], env)
    steps = step_seconds(work)
    phases = json.loads((work / "direct" / "phases.json").read_text())

    overhead = pipeline - library
    print(
        f"\nerasure pipeline on {os.cpu_count()} cores, request {args.request.name} ({config['unlearning']['steps']} "
        f"steps), {time.strftime('%Y-%m-%d')}"
    )
    print("| measured | seconds | share of pipeline |\n|---|---:|---:|")
    print(f"| (a) `run.py` end to end, fresh process | {pipeline:.1f} | 100 % |")
    print(f"| (b) same compute, library only, fresh process | {library:.1f} | {library / pipeline:.0%} |")
    print(
        f"| overhead (a) - (b): orchestration, tracking, registry, imports | {overhead:.1f} | "
        f"{overhead / pipeline:.1%} |"
    )
    print("\n| step | in the pipeline (ZenML's record) | library only |\n|---|---:|---:|")
    for name, seconds in steps.items():
        print(f"| `{name}` | {seconds:.1f} | {phases.get(name, 0.0):.1f} |")
    print(
        f"| outside the steps (process start, imports, ZenML run set-up) | {pipeline - sum(steps.values()):.1f} | "
        f"{library - sum(phases.values()):.1f} |"
    )
    print(f"\nfirst use only, not in (a): ZenML store and stack creation {first_use:.1f} s")
    print(
        f"\ntargets: (a) <= 600 s: {'met' if pipeline <= 600 else 'MISSED'}; overhead <= 15 %: "
        f"{'met' if overhead / pipeline <= 0.15 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
