"""What the zip takes beside our packages (deploy/packaging.py): every local package a handler imports, and
a refusal, naming the queue, for a handler that imports what never ships. And the deploy-time region check."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.packaging import package_patterns
from deploy.render import main
from poller.config import parse_config
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
