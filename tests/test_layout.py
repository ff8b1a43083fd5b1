"""The house plan, checked: the library imports neither ZenML nor MLflow, imports only go down the layers,
and no module imports itself back through another (import circles)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("erasediff", "mlflow_adapters", "steps", "pipelines")
# What each top-level package may import from the project (downward only).
ALLOWED = {
    "erasediff": {"erasediff"},
    "mlflow_adapters": {"erasediff", "mlflow_adapters"},
    "steps": {"erasediff", "mlflow_adapters", "steps"},
    "pipelines": {"erasediff", "mlflow_adapters", "steps", "pipelines"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports count), as absolute dotted names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


def _project_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}


def test_the_library_imports_neither_zenml_nor_mlflow() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] in ("zenml", "mlflow"))
        for p in (ROOT / "erasediff").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_imports_go_down_the_layers() -> None:
    upward = [
        (name, target)
        for name, targets in _project_graph().items()
        for target in targets
        if target.split(".")[0] not in ALLOWED[name.split(".")[0]]
    ]
    assert not upward


def test_no_import_circles() -> None:
    graph = _project_graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles


def test_the_library_is_grouped_by_concern() -> None:
    """No module sits loose at the top of erasediff/: each belongs to a sub-package a newcomer can find by name."""
    loose = sorted(p.name for p in (ROOT / "erasediff").glob("*.py") if p.name != "__init__.py")
    assert not loose


def _subpackage(module: str) -> str:
    """The folder a module belongs to, one level below its top package (erasediff.method, erasediff.models, ...)."""
    package = module if (ROOT / module.replace(".", "/") / "__init__.py").is_file() else module.rpartition(".")[0]
    return ".".join(package.split(".")[:2])


def test_no_circles_between_subpackages() -> None:
    """A sub-package may use another only if that one does not use it back, through any path: the layers stay
    readable."""
    edges: dict[str, set[str]] = {}
    for name, targets in _project_graph().items():
        for target in targets:
            if _subpackage(name) != _subpackage(target):
                edges.setdefault(_subpackage(name), set()).add(_subpackage(target))

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(edges.get(node, ()))
        return False

    circles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert not circles


def test_benchmarks_do_not_import_each_other_in_circles() -> None:
    bench = ROOT / "benchmarks"
    names = {p.stem for p in bench.glob("*.py")}
    graph = {p.stem: {m.split(".")[0] for m in _imports(p)} & names - {p.stem} for p in bench.glob("*.py")}
    circles = [(a, b) for a in graph for b in graph[a] if a in graph.get(b, set())]
    assert not circles


def test_the_guides_stay_short_and_their_links_resolve_inside_the_repository() -> None:
    """README.md is a user's guide and docs/method.md the method: results live in docs/results/, written by benchmarks
    (never into README.md), and every relative link points at a file of this repository."""
    import re

    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    assert len((ROOT / "docs" / "method.md").read_text().splitlines()) <= 250
    benchmarks = (ROOT / "benchmarks").glob("*.py")
    writers = [p.name for p in benchmarks if "README" in p.read_text()]
    assert not writers
    broken = []
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if "://" not in target and not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            if "://" not in target and not (page.parent / target).resolve().is_relative_to(ROOT):
                broken.append(f"{page.relative_to(ROOT)}: {target} leaves the repository")
    assert not broken
