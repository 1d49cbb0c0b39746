"""What goes into the zip besides the requirements: our shipped packages, the config, and every local
top-level package a configured handler imports (found by reading the handler's modules, transitively), so
that a handler never fails at run time on a module left behind. A handler that imports code which must not
ship (deploy/, ops/, sandbox/, testing/, tests/, bench/) from another package is refused here, naming the
queue key. (A handler that lives in one of them, as the sandbox demo's do, ships its own package.)"""

from __future__ import annotations

import ast
from pathlib import Path

from poller.config import Config
from poller.exceptions import ConfigError

SHIPPED_PACKAGES = ("poller", "scaler", "producer")
"""Our packages that run in Lambda; deploy/, ops/, sandbox/ and testing/ never go into the zip."""
NEVER_SHIPPED = ("deploy", "ops", "sandbox", "testing", "tests", "bench")


def package_patterns(config: Config, shipped_config: str, root: Path) -> list[str]:
    """The Framework's ``package.patterns``: ``!**`` then what to ship. No bytecode: Lambda's Python compiles
    what it imports, and a .pyc of another Python version is dead weight."""
    tops: set[str] = set()
    for queue in config.queues.values():
        if queue.handler is not None:
            tops |= _local_imports(queue.handler.split(".", 1)[0], root, queue.key, config.path)
    patterns = ["!**", *(f"{package}/**" for package in SHIPPED_PACKAGES), shipped_config]
    for top in sorted(tops - set(SHIPPED_PACKAGES)):
        patterns += [f"{top}/**", f"{top}.py"]
    return [*patterns, "!**/__pycache__/**", "!**/*.pyc"]


def _local_imports(top: str, root: Path, key: str, path: str) -> set[str]:
    """``top`` and every top-level package or module of the project that its code imports, transitively."""
    found: set[str] = set()
    todo = [top]
    while todo:
        name = todo.pop()
        if name in found or name in SHIPPED_PACKAGES:
            continue
        if name in NEVER_SHIPPED and name == top:
            return {top}  # a handler that lives there (the sandbox demo's) ships that package alone, unread
        if name in NEVER_SHIPPED:
            raise ConfigError(
                f"{path}: queues.{key}.handler: its code imports {name!r}, which is never shipped to Lambda "
                f"({', '.join(NEVER_SHIPPED)} stay out of the zip): move what the handler needs elsewhere"
            )
        files = _files_of(name, root)
        if not files:
            continue  # not ours: the standard library or a requirement
        found.add(name)
        for file in files:
            todo += _imported_tops(file)
    return found


def _files_of(name: str, root: Path) -> list[Path]:
    package, module = root / name, root / f"{name}.py"
    if package.is_dir():
        return sorted(package.rglob("*.py"))
    return [module] if module.is_file() else []


def _imported_tops(file: Path) -> list[str]:
    """The top-level names a module imports (absolute imports; a relative one stays in its package)."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except (OSError, SyntaxError, ValueError):
        return []  # the handler's own import at cold start says what is wrong with it
    tops = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops += [alias.name.split(".", 1)[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.append(node.module.split(".", 1)[0])
    return tops
