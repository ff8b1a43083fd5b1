"""Bytes one request adds across every store, against what it must keep: the bytes its registered version adds to the
registry, its evaluation images and its reports (issue 40's ratio, target at most 1.1x).

Runs `run.py` on a request in a fresh work folder with its own model cache, then measures: ZenML's artifact store
and its metadata database (`zenml/local_stores`), MLflow's artifact store (`mlartifacts`), the scratch folder, and
the local model cache the run filled. What must be kept: the version's `storage.bytes_added` tag, the evaluation's
images and the report files in the MLflow run. A fresh work folder's first request also creates the stores (the
ZenML database's schema alone is about 1.8 MB), so a second request - the same one under another id and unlearning
seed, on the stores the first left - is measured too: what a request adds to a deployment already running.

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

import yaml

ROOT = Path(__file__).resolve().parents[1]
DB = "default_zen_store"  # ZenML's local metadata database, beside its artifact store under local_stores


def size(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file()) if folder.exists() else 0


def run_request(request: Path, work: Path, cache: Path) -> tuple[int, float]:
    env = {**os.environ, "ERASEDIFF_CACHE": str(cache)}
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "run.py", str(request), "--workdir", str(work)], cwd=ROOT, env=env, capture_output=True
    )
    if child.returncode not in (0, 1):
        raise SystemExit(f"error: run.py exited {child.returncode}: {child.stderr.decode()[-2000:]}")
    return child.returncode, time.perf_counter() - started


def measure(request: Path) -> tuple[dict, dict]:
    """(the first request on fresh stores, a second on the stores it left: what the second added)."""
    with tempfile.TemporaryDirectory(prefix="request-bytes-") as tmp:
        work, cache = Path(tmp) / "work", Path(tmp) / "cache"
        code, seconds = run_request(request, work, cache)
        first = {"exit": code, "seconds": seconds, **stored_and_kept(work, cache)}
        config = yaml.safe_load(request.read_text())
        config["request"]["id"] += "-second"
        unlearning = config.setdefault("unlearning", {})
        unlearning["seed"] = unlearning.get("seed", 0) + 1
        again = Path(tmp) / request.name
        again.write_text(yaml.safe_dump(config))
        code, seconds = run_request(again, work, cache)
        after = stored_and_kept(work, cache)
        second = {k: after[k] - first[k] for k in after if k != "ratio"}
        second = {"exit": code, "seconds": seconds, **second, "ratio": second["stores"] / second["kept"]}
        return first, second


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
        "zenml artifact store": sum(size(d) for d in (work / "zenml" / "local_stores").glob("*") if d.name != DB),
        "zenml metadata database": size(work / "zenml" / "local_stores" / DB),
        "mlflow artifact store": size(artifacts),
        "mlflow tracking database": size(work, "mlflow.db"),
        "scratch": size(work / "scratch"),
    }
    kept = added + kept_eval + kept_report
    return {
        **stores,
        "model cache (local, reusable; not counted)": size(cache / "materialized"),
        "version adds": added,
        "evaluation images": kept_eval,
        "reports": kept_report,
        "stores": sum(stores.values()),
        "kept": kept,
        "ratio": sum(stores.values()) / kept,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--request", type=Path, default=ROOT / "configs" / "request_digits_forget_3.yaml")
    parser.add_argument("--publish", action="store_true", help="write docs/results/request-bytes.md")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from results_page import publish

    first, second = measure(args.request.resolve())
    names = [k for k in first if k not in ("exit", "seconds", "ratio")]
    lines = ["| bytes | first request (fresh stores) | second request (warm stores) |", "|---|---:|---:|"] + [
        f"| {k} | {first[k]:,.0f} | {second[k]:,.0f} |" for k in names
    ]
    report = "\n".join(
        [
            f"`{args.request.name}`: exit {first['exit']} in {first['seconds']:.0f} s on fresh stores, then the same "
            f"request under another id and unlearning seed on the stores it left: exit {second['exit']} in "
            f"{second['seconds']:.0f} s. Stores: ZenML's artifact store and metadata database, MLflow's artifact store "
            "(registry parts, evaluation, reports) and tracking database, scratch. Kept: the registered version's "
            "added bytes, the evaluation images and the reports (the run's and the registered model's copy). The "
            "model cache is local and reusable, reported apart.",
            "",
            *lines,
            "",
            f"Bytes across the stores / bytes kept: first request **{first['ratio']:.2f}x**, second request "
            f"**{second['ratio']:.2f}x** (target at most 1.1x).",
        ]
    )
    row = {"first": first, "second": second}
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
