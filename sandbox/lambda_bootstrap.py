"""The bootstrap of one local Lambda container (a child process), run as a script by sandbox/containers.py:

    python -I -S lambda_bootstrap.py TASK_DIR RUNTIME_DIR HANDLER

It stands in for Lambda's Python runtime: ``sys.path`` is the unpacked deployment package (TASK_DIR, as
/var/task) and the runtime's own libraries (RUNTIME_DIR: boto3, botocore and their dependencies, which
Lambda provides), then the standard library; nothing of the working tree. The handler is imported once, at
init, as Lambda does; a module or attribute the package lacks fails every invocation with Lambda's own
error types (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``).

It imports only the standard library itself. The protocol is JSON lines: the parent writes invocations
(``{"id", "payload", "remaining_ms", "request_id"}``) and deadline cuts (``{"cut_ms"}``) on stdin; this
answers ``{"ready": ...}`` once, then ``{"id", "result"}`` or ``{"id", "error"}`` per invocation on the
original stdout. The function's own output (prints, log lines) goes to stderr, as to CloudWatch Logs.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

__all__: list[str] = []


class Context:
    """The Lambda context our code and users' handlers use; its deadline is cut by the parent."""

    def __init__(self, request_id: str, remaining_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = "$LATEST"
        self.invoked_function_arn = os.environ.get("SQS_LOOPS_SANDBOX_FUNCTION_ARN", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _unloadable_extensions(task_dir: Path) -> list[str]:
    """Compiled modules of the package that this interpreter cannot load (built for another platform or
    Python): their pure-Python fallback, if any, runs here instead."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for path in sorted(task_dir.rglob("*.so")):
        module = path.name.split(".", 1)[0]
        if not any(path.name == module + suffix for suffix in suffixes):  # the import system never tries it
            found.append(path.relative_to(task_dir).as_posix())
    return found


def _load(handler: str) -> tuple[Any, dict[str, str] | None]:
    module_name, _, attribute = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # what Lambda answers for a handler module the package lacks or cannot import
        return None, {
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": f"Unable to import module '{module_name}': {exc}",
        }
    function = getattr(module, attribute, None)
    if function is None:
        return None, {
            "errorType": "Runtime.HandlerNotFound",
            "errorMessage": f"Handler '{attribute}' missing on module '{module_name}'",
        }
    return function, None


def main(argv: list[str]) -> int:
    task_dir, runtime_dir, handler = Path(argv[1]), Path(argv[2]), argv[3]
    stdlib = [p for p in sys.path if p and not p.startswith((str(task_dir), str(runtime_dir)))]
    sys.path[:] = [str(task_dir), str(runtime_dir), *stdlib]
    os.chdir(task_dir)
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = sys.stderr  # the function's prints are log lines, never protocol
    logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.WARNING)  # like Lambda's root
    function, init_error = _load(handler)
    origin = getattr(sys.modules.get(handler.rpartition(".")[0]), "__file__", None)
    ready = {
        "ready": True,
        "python": sys.version.split()[0],
        "handler_file": origin,
        "sys_path": sys.path,
        "unloadable": _unloadable_extensions(task_dir),
        "init_error": init_error,
    }
    lock = threading.Lock()

    def answer(message: dict[str, Any]) -> None:
        with lock:
            answers.write(json.dumps(message, default=str) + "\n")

    answer(ready)
    pending: list[dict[str, Any]] = []
    arrived = threading.Condition()
    current: list[Context] = []

    def read() -> None:
        for line in sys.stdin:
            message = json.loads(line)
            with arrived:
                if "cut_ms" in message:  # the parent moved the deadline (crash, stop)
                    for context in current:
                        context.deadline = min(context.deadline, time.monotonic() + message["cut_ms"] / 1000)
                else:
                    pending.append(message)
                    arrived.notify()
        with arrived:
            pending.append({"stop": True})
            arrived.notify()

    threading.Thread(target=read, name="bootstrap-reader", daemon=True).start()
    while True:
        with arrived:
            arrived.wait_for(lambda: bool(pending))
            message = pending.pop(0)
            if message.get("stop"):
                return 0
            context = Context(message["request_id"], message["remaining_ms"])
            current[:] = [context]
        if init_error is not None:
            answer({"id": message["id"], "error": init_error})
            continue
        try:
            result = function(message["payload"], context)
            answer({"id": message["id"], "result": result})
        except Exception as exc:  # the function failed: Lambda's error payload
            trace = traceback.format_exception(exc)
            sys.stderr.write(f"[ERROR] {type(exc).__name__}: {exc}\n")
            answer(
                {
                    "id": message["id"],
                    "error": {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": trace},
                }
            )
        finally:
            with arrived:
                current.clear()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
