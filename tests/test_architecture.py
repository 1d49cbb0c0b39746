"""The layout of docs/architecture.md, checked: imports run one way with no circle (lazy imports and
TYPE_CHECKING imports included), shipped code imports nothing that is not shipped, no module outside the
tests grows past 400 lines, and every package names its public API with ``__all__``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("poller", "scaler", "producer", "deploy", "ops", "sandbox", "testing")
SHIPPED = {"poller", "scaler", "producer"}
# What each part may import of ours (besides itself): the import direction of docs/architecture.md.
MAY_IMPORT = {
    "poller": set(),
    "producer": {"poller"},
    "scaler": {"poller"},
    "testing": {"poller"},
    "deploy": {"poller", "scaler"},
    "sandbox": {"poller", "scaler", "producer", "deploy", "testing"},
    "ops": {"poller", "scaler", "producer", "deploy", "testing", "sandbox"},
}
MAX_MODULE_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Our modules that ``name`` imports anywhere in its body (a submodule named in ``from pkg import sub``
    counts as that submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t in MODULES}
    return out - {name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_imports_run_one_way() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if (top := target.split(".")[0]) != name.split(".")[0] and top not in MAY_IMPORT[name.split(".")[0]]
    ]
    assert wrong == []


def test_shipped_code_imports_only_shipped_code() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if name.split(".")[0] in SHIPPED
        for target in targets
        if target.split(".")[0] not in SHIPPED
    ]
    assert wrong == []


def test_no_import_circle() -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            pytest.fail("import circle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(GRAPH[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


def test_modules_stay_small() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_every_package_names_its_public_api() -> None:
    missing = []
    for name, path in MODULES.items():
        if path.name != "__init__.py" or name.startswith("sandbox.demo"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exported = [
            n
            for n in tree.body
            if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
        ]
        if not exported:
            missing.append(name)
    assert missing == []
