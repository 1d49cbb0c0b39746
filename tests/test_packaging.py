"""What the zip takes beside our packages (deploy/packaging.py): every local package a handler imports, and
a refusal, naming the queue, for a handler that imports what never ships. What deploy/artifact.py adds to it:
bytecode the runtime loads instead of compiling, and the config's JSON form. And the deploy-time region
check."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy.artifact import RUNTIME_PYTHON_ENV, add_bytecode, add_config_form, runtime_python
from deploy.packaging import package_patterns
from deploy.render import main
from poller.config import load_config, parse_config
from poller.config.parse import RENDERED_SUFFIX, rendered_form
from poller.exceptions import ConfigError


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def _config(handler: str) -> str:
    return f"queues:\n  orders:\n    queue: orders\n    handler: {handler}\n"


def test_a_handler_s_local_imports_are_shipped_transitively(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/orders.py": "import json\nimport yaml\nfrom shared.db import connect\n\ndef handle(e, c): ...\n",
            "shared/__init__.py": "",
            "shared/db.py": "from . import pool\nimport helpers\n",
            "shared/pool.py": "",
            "helpers.py": "import poller\n",
            "unused/__init__.py": "",
        },
    )
    patterns = package_patterns(parse_config(_config("app.orders.handle")), "queues.yml", root)
    assert patterns[:5] == ["!**", "poller/**", "scaler/**", "producer/**", "queues.yml"]
    shipped = {p.split("/")[0].removesuffix(".py") for p in patterns[5:] if not p.startswith("!")}
    assert shipped == {"app", "shared", "helpers"}  # not json, yaml (not ours), poller (already), unused


def test_a_handler_that_imports_what_never_ships_is_refused_naming_the_queue(tmp_path: Path) -> None:
    root = _project(tmp_path, {"jobs.py": "from sandbox.clock import FakeClock\n\ndef handle(e, c): ...\n"})
    with pytest.raises(
        ConfigError, match=r"queues\.orders\.handler: its code imports 'sandbox', which is never shipped"
    ):
        package_patterns(parse_config(_config("jobs.handle")), "queues.yml", root)


def test_the_deploy_refuses_a_queue_of_another_region(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "queues.yml"
    config.write_text(
        _config("app.orders.handle").replace(
            "queue: orders", "queue: https://sqs.eu-west-1.amazonaws.com/111111111111/orders"
        )
    )
    assert main(["--prefix", "p", "--config", str(config), "--root", str(tmp_path), "--region", "us-east-1"]) == 2
    assert "queues.orders.queue: the queue is in eu-west-1, the deployment in us-east-1" in capsys.readouterr().err


# -- what deploy/artifact.py adds to the zip ---------------------------------------------------------------


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def _run_from(task: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with ``task`` first on the path and no bytecode written (Lambda's
    read-only code directory)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(task)}
    return subprocess.run([sys.executable, "-c", code], cwd=task, env=env, capture_output=True, text=True)


# Any compile of a module's source during the import fails it: only bytecode may be loaded.
NO_COMPILE = (
    "import builtins\n"
    "def refuse(source, filename, *a, **k):\n"
    "    raise AssertionError(f'compiled {filename}')\n"
    "builtins.compile = refuse\n"
)


def test_the_zip_gets_bytecode_the_runtime_loads_without_compiling(tmp_path: Path) -> None:
    files = {"lib/__init__.py": "", "lib/mod.py": "VALUE = 41 + 1\n", "lib/py2.py": "print 'hi'\n", "queues.yml": ""}
    package = _zip(tmp_path / "p.zip", files)
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = runtime_python(runtime, tmp_path, {RUNTIME_PYTHON_ENV: sys.executable})
    assert python == sys.executable
    added, failures = add_bytecode(package, python)
    assert added == 2
    assert any("py2.py" in line for line in failures)  # said, and shipped as source: the rest still compiled
    assert add_bytecode(package, python)[0] == 0  # again: nothing added twice
    task = tmp_path / "task"
    zipfile.ZipFile(package).extractall(task)
    tag = sys.implementation.cache_tag
    assert (task / "lib" / "__pycache__" / f"mod.{tag}.pyc").is_file()
    loaded = _run_from(task, NO_COMPILE + "import lib.mod; print(lib.mod.VALUE)")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "42"
    # A source edited after packaging (the console's editor) is compiled again, never run from stale bytecode.
    (task / "lib" / "mod.py").write_text("VALUE = 7\n")
    assert _run_from(task, "import lib.mod; print(lib.mod.VALUE)").stdout.strip() == "7"
    assert _run_from(task, NO_COMPILE + "import lib.mod").returncode != 0


def test_no_python_of_the_runtime_s_version_means_no_bytecode(tmp_path: Path) -> None:
    other = "python3.99"  # no such Python anywhere
    assert runtime_python(other, tmp_path, {RUNTIME_PYTHON_ENV: sys.executable}) is None


CONFIG_YAML = """\
poller:
  heartbeat_s: 60
defaults:
  max_loops: 4
queues:
  orders:
    queue: orders-prod
    handler: app.orders.handle
    scale_steps:
      - {depth: 100, loops: 2}
"""


def test_the_config_s_json_form_gives_the_same_config_without_yaml(tmp_path: Path) -> None:
    package = _zip(tmp_path / "p.zip", {"queues.yml": CONFIG_YAML})
    assert add_config_form(package, "queues.yml")
    task = tmp_path / "task"
    zipfile.ZipFile(package).extractall(task)
    assert (task / f"queues.yml{RENDERED_SUFFIX}").is_file()
    assert load_config(task / "queues.yml") == parse_config(CONFIG_YAML, source=str(task / "queues.yml"))
    # A cold start reads it without importing PyYAML (the poller's own modules, from this checkout).
    code = f"import sys; sys.path.append({str(Path.cwd())!r}); from poller.config import load_config; "
    code += "c = load_config('queues.yml'); print(c.queues['orders'].max_loops, 'yaml' in sys.modules)"
    read = _run_from(task, code)
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["4", "False"]


def test_a_json_form_that_does_not_match_its_yaml_is_ignored(tmp_path: Path) -> None:
    config = tmp_path / "queues.yml"
    config.write_text(CONFIG_YAML)
    form = rendered_form(CONFIG_YAML)
    assert form is not None
    config.with_name(config.name + RENDERED_SUFFIX).write_text(form)
    config.write_text(CONFIG_YAML.replace("max_loops: 4", "max_loops: 6"))  # edited after rendering
    assert load_config(config).queues["orders"].max_loops == 6
    # And what it validates is validated alike: a bad value in the JSON form fails as it would in the YAML.
    bad = CONFIG_YAML.replace("max_loops: 4", "max_loops: 0")
    config.write_text(bad)
    config.with_name(config.name + RENDERED_SUFFIX).write_text(rendered_form(bad) or "")
    with pytest.raises(ConfigError, match=r"defaults\.max_loops|queues\.orders\.max_loops"):
        load_config(config)


def test_yaml_that_json_cannot_hold_gets_no_json_form() -> None:
    assert rendered_form(CONFIG_YAML + "    created: 2026-12-03\n") is None  # a date
    assert rendered_form("queues:\n  1: {queue: q, handler: a.b}\n") is None  # a key that is not a string
