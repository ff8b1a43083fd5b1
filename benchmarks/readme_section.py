"""Benchmarks write their report into README.md between a pair of markers of their own."""

from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def link(path: Path) -> str:
    """A path README.md can link to (relative to the repository when the figure is inside it)."""
    path = path.resolve()
    return str(path.relative_to(README.parent)) if path.is_relative_to(README.parent) else str(path)


def write_section(name: str, report: str) -> None:
    """Replace what lies between `<!-- name:begin -->` and `<!-- name:end -->`."""
    begin, end_marker = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = README.read_text()
    start, end = text.index(begin), text.index(end_marker)
    README.write_text(text[: start + len(begin)] + "\n" + report + "\n" + text[end:])
