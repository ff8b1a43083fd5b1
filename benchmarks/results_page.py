"""Benchmarks publish their report as a results page, `docs/results/<name>.md`, headed by when, from which commit and on
what machine it was measured. The user's guide links to these pages; no benchmark edits it."""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "docs" / "results"


def link(path: Path) -> str:
    """A path a results page can link to (relative to docs/results/ when the figure is inside the repository)."""
    path = path.resolve()
    return os.path.relpath(path, RESULTS) if path.is_relative_to(ROOT) else str(path)


def provenance() -> str:
    """Date, commit (with + when the tree had changes) and machine, for a page's header."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    commit = (git("rev-parse", "--short", "HEAD") or "unknown") + ("+" if git("status", "--porcelain") else "")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"Measured {time.strftime('%Y-%m-%d')} at commit {commit} on {platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, {device}; command: `{' '.join(['python', *sys.argv])}`."
    )


def write_page(name: str, title: str, report: str) -> Path:
    """Write `docs/results/<name>.md`: a title, the provenance line and the report."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    page = RESULTS / f"{name}.md"
    page.write_text(f"# {title}\n\n{provenance()}\n\n{report}\n")
    return page


def publish(out: Path, stem: str, report: str, data: object, page: str | None, title: str = "") -> None:
    """`out/<stem>.md` and `.json`, the report on stdout, and the results page `page` when one is named."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(report + "\n")
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2))
    print(report)
    if page:
        print(f"wrote {write_page(page, title or page, report).relative_to(ROOT)}")
