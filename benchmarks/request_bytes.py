"""Bytes one request adds across every store, against what it must keep: the bytes its registered version adds to the
registry, its evaluation images and its reports (issue 40's ratio, target at most 1.1x).

Runs `run.py` on a request in a fresh work folder with its own model cache, then measures: ZenML's artifact store
(`zenml/local_stores`), MLflow's artifact store (`mlartifacts`), the scratch folder, and the local model cache the run
filled. What must be kept: the version's `storage.bytes_added` tag, the evaluation's images and the report files in
the MLflow run.

    python benchmarks/request_bytes.py                                       # the shipped digits request
    python benchmarks/request_bytes.py --request configs/request_digits_forget_3.yaml --publish
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file()) if folder.exists() else 0


def measure(request: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="request-bytes-") as tmp:
        work, cache = Path(tmp) / "work", Path(tmp) / "cache"
        env = {**os.environ, "ERASEDIFF_CACHE": str(cache)}
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "run.py", str(request), "--workdir", str(work)], cwd=ROOT, env=env, capture_output=True
        )
        seconds = time.perf_counter() - started
        if child.returncode not in (0, 1):
            raise SystemExit(f"error: run.py exited {child.returncode}: {child.stderr.decode()[-2000:]}")
        return {"exit": child.returncode, "seconds": seconds, **stored_and_kept(work, cache)}


def stored_and_kept(work: Path, cache: Path) -> dict:
    """Bytes in a finished request's work folder: each store, what must be kept, and their ratio (the model cache is
    local and reusable: reported, not counted)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    versions = [v for m in client.search_registered_models() for v in client.search_model_versions(f"name='{m.name}'")]
    added = sum(int(v.tags.get("storage.bytes_added", 0)) for v in versions)
    artifacts = work / "mlartifacts"
    kept_eval = sum(size(d, "*.png") for d in artifacts.rglob("evaluation") if d.is_dir())
    kept_report = sum(size(d) for d in artifacts.rglob("report") if d.is_dir())  # the run's and the model's copy
    stores = {
        "zenml artifact store": size(work / "zenml" / "local_stores"),
        "mlflow artifact store": size(artifacts),
        "scratch": size(work / "scratch"),
        "model cache": size(cache / "materialized"),
    }
    kept = added + kept_eval + kept_report
    return {
        **stores,
        "version adds": added,
        "evaluation images": kept_eval,
        "reports": kept_report,
        "stores (without the cache)": sum(v for k, v in stores.items() if k != "model cache"),
        "ratio": sum(v for k, v in stores.items() if k != "model cache") / kept,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--request", type=Path, default=ROOT / "configs" / "request_digits_forget_3.yaml")
    parser.add_argument("--publish", action="store_true", help="write docs/results/request-bytes.md")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from results_page import publish

    row = measure(args.request.resolve())
    lines = ["| what | bytes |", "|---|---:|"] + [
        f"| {k} | {v:,.0f} |" for k, v in row.items() if k not in ("exit", "seconds", "ratio")
    ]
    report = "\n".join(
        [
            f"`{args.request.name}` (exit {row['exit']}, {row['seconds']:.0f} s). Stores: what the run added to "
            "ZenML's artifact store, MLflow's artifact store (registry parts, evaluation, reports) and scratch. "
            "Kept: the registered version's added bytes, the evaluation images and the reports. The model cache "
            "is local and reusable, reported apart.",
            "",
            *lines,
            "",
            f"Bytes across the stores / bytes kept: **{row['ratio']:.2f}x** (target at most 1.1x).",
        ]
    )
    publish(
        ROOT / "benchmarks" / "results",
        "request-bytes",
        report,
        row,
        "request-bytes" if args.publish else None,
        "Bytes per request",
    )


if __name__ == "__main__":
    main()
