"""What ``serverless package`` adds to the zip once the Framework and serverless-python-requirements have
made it (deploy/artifact.js runs this after them): ``python -m deploy.artifact ZIP --config PATH
--runtime python3.12``.

- **Bytecode for the runtime's Python.** Lambda's code directory is read-only: from a zip without
  ``__pycache__`` every cold start compiles our modules and every bundled library (PynamoDB, PyYAML,
  requests) from source again, about 130 ms on 3.12 here (docs/benchmarks.md). So every ``.py`` of the zip
  is compiled by a Python of the runtime's version and its ``.pyc`` added. The ``.pyc`` are checked-hash
  (PEP 552): the runtime compares them with the source's hash, not its mtime (which a zip does not keep
  exactly), so a ``.py`` changed after packaging (the console's editor) is compiled again, never run stale.
  Without such a Python here the zip ships as before, without bytecode, and the step says so.
- **The config's JSON form** beside it (:func:`poller.config.parse.rendered_form`), so that a cold start
  reads it without PyYAML.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from poller.config.parse import RENDERED_SUFFIX, rendered_form

RUNTIME_PYTHON_ENV = "SQS_LOOPS_RUNTIME_PYTHON"
"""A Python of the functions' runtime version to compile with, when it is not found by name."""

TASK_ROOT = "/var/task"
"""Where Lambda unpacks the zip: the path the bytecode names its sources by (for tracebacks)."""

MEMBER_DATE = (1980, 1, 1, 0, 0, 0)
"""Added members get a fixed date, so the same sources make the same zip."""


def runtime_version(runtime: str) -> str:
    """``python3.12`` -> ``3.12``."""
    found = re.fullmatch(r"python(\d+\.\d+)", runtime)
    if found is None:
        raise ValueError(f"not a Python runtime: {runtime!r}")
    return found.group(1)


def runtime_python(runtime: str, root: Path, environ: dict[str, str] | None = None) -> str | None:
    """A Python of ``runtime``'s version: ``$SQS_LOOPS_RUNTIME_PYTHON``, the project's ``.venv312`` (``make
    test`` makes it), ``python3.12`` on the PATH, pyenv's; None if none of them is that version."""
    env = os.environ if environ is None else environ
    version = runtime_version(runtime)
    candidates = [env.get(RUNTIME_PYTHON_ENV), str(root / f".venv{version.replace('.', '')}" / "bin" / "python")]
    candidates.append(shutil.which(f"python{version}"))
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        listed = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout.strip()
        versions = sorted(Path(listed, "versions").glob(f"{version}.*")) if listed else []
        candidates += [str(v / "bin" / f"python{version}") for v in reversed(versions)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and _version_of(candidate) == version:
            return candidate
    return None


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def add_bytecode(zip_path: Path, python: str) -> tuple[int, list[str]]:
    """Compile every ``.py`` of the zip with ``python`` and add the ``.pyc`` it makes (checked-hash, under
    ``__pycache__`` as the import system looks for them). Returns how many were added, and compileall's
    complaints about files it could not compile (a library's file of another Python version, say): those
    ship without bytecode, as before, and fail only if imported, as they would have."""
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(zip_path) as archive:
            names = set(archive.namelist())
            for name in names:
                if name.endswith(".py"):
                    archive.extract(name, folder)
        # -s/-p: the bytecode names its sources as Lambda places them (/var/task/...), for tracebacks.
        compile_all = ["-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "checked-hash"]
        done = subprocess.run(
            [python, *compile_all, "-s", folder, "-p", TASK_ROOT, folder], capture_output=True, text=True, check=False
        )
        failures = [line for line in done.stdout.splitlines() + done.stderr.splitlines() if line.strip()]
        added = 0
        with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED) as out:
            for pyc in sorted(Path(folder).rglob("*.pyc")):
                name = pyc.relative_to(folder).as_posix()
                if name not in names:
                    out.writestr(_member(name), pyc.read_bytes())
                    added += 1
    return added, failures if done.returncode != 0 else []


def add_config_form(zip_path: Path, config: str) -> bool:
    """Add the JSON form of the zip's config file ``config`` beside it; False when it has none (its data is
    not JSON's: the function then parses the YAML)."""
    with zipfile.ZipFile(zip_path) as archive:
        text = archive.read(config).decode("utf-8")
        if config + RENDERED_SUFFIX in archive.namelist():
            return True
    form = rendered_form(text, source=config)
    if form is None:
        return False
    with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr(_member(config + RENDERED_SUFFIX), form)
    return True


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=MEMBER_DATE)
    info.external_attr = 0o644 << 16  # rw-r--r--, as the Framework's own members
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.artifact", description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path, help="the deployment package to complete")
    parser.add_argument("--config", required=True, help="the config file's path inside the zip")
    parser.add_argument("--runtime", required=True, help="the functions' runtime, e.g. python3.12")
    parser.add_argument("--root", type=Path, default=Path("."), help="the project root (for .venv312)")
    args = parser.parse_args(argv)
    python = runtime_python(args.runtime, args.root)
    if python is None:
        print(
            f"sqs-loops: no Python {runtime_version(args.runtime)} found ({RUNTIME_PYTHON_ENV}, .venv312, PATH, "
            "pyenv): the package ships without bytecode, and every cold start compiles it (docs/deploy.md)"
        )
    else:
        added, failures = add_bytecode(args.zip, python)
        print(f"sqs-loops: {added} .pyc compiled by {python} added to {args.zip.name}")
        for line in failures:
            print(f"sqs-loops: not compiled (ships as source): {line}")
    if add_config_form(args.zip, args.config):
        print(f"sqs-loops: {args.config}{RENDERED_SUFFIX} added (the config read without PyYAML at cold start)")
    else:
        print(f"sqs-loops: {args.config} holds what JSON cannot (a date?): the functions parse the YAML")
    return 0


if __name__ == "__main__":
    sys.exit(main())
