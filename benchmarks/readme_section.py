"""Benchmarks write their report into README.md between a pair of markers of their own."""

import json
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def link(path: Path) -> str:
    """A path README.md can link to (relative to the repository when the figure is inside it)."""
    path = path.resolve()
    return str(path.relative_to(README.parent)) if path.is_relative_to(README.parent) else str(path)


def require_section(name: str) -> tuple[str, str]:
    """The section's two markers; exit 2 with one `error:` line when README.md lacks them (check before a long run, not
    after)."""
    begin, end_marker = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = README.read_text()
    if begin not in text or end_marker not in text:
        print(
            f"error: README.md has no section {name!r}: add the lines {begin} and {end_marker} where it belongs",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return begin, end_marker


def write_section(name: str, report: str) -> None:
    """Replace what lies between `<!-- name:begin -->` and `<!-- name:end -->`."""
    begin, end_marker = require_section(name)
    text = README.read_text()
    start, end = text.index(begin), text.index(end_marker)
    README.write_text(text[: start + len(begin)] + "\n" + report + "\n" + text[end:])


def publish(out: Path, stem: str, report: str, data: object, section: str | None) -> None:
    """`out/<stem>.md` and `.json`, the report on stdout, and into README.md's `section` when one is named."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(report + "\n")
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2))
    print(report)
    if section:
        write_section(section, report)
