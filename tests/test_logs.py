"""Where the log lines go: in Lambda straight to stdout (one JSON object a line, as CloudWatch needs for
metrics in EMF), elsewhere to the root logger's handlers as before."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from poller.logs import LAMBDA_RUNTIME_ENV, LOGGER, configure_logging, log


@pytest.fixture
def fresh_logger() -> Iterator[None]:
    handlers, propagate = list(LOGGER.handlers), LOGGER.propagate
    LOGGER.handlers.clear()
    yield
    LOGGER.handlers[:] = handlers
    LOGGER.propagate = propagate


def test_in_lambda_each_line_is_bare_json_on_stdout(
    fresh_logger: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(LAMBDA_RUNTIME_ENV, "127.0.0.1:9001")
    # The Lambda runtime's own handler on the root logger, which prefixes "[INFO] time request-id".
    root_handler = logging.StreamHandler()
    root_handler.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s\trequest\t%(message)s"))
    logging.getLogger().addHandler(root_handler)
    try:
        configure_logging()
        log("info", "batch", queue="orders", received=3)
    finally:
        logging.getLogger().removeHandler(root_handler)
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"level": "info", "event": "batch", "queue": "orders", "received": 3}
    ]
    assert "batch" not in err  # not also through the runtime's prefixing handler


def test_outside_lambda_lines_still_reach_the_root_loggers_handlers(
    fresh_logger: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(LAMBDA_RUNTIME_ENV, raising=False)
    caplog.set_level(logging.INFO, logger="sqs_loops")
    configure_logging()
    log("info", "batch", queue="orders")
    assert [json.loads(r.getMessage())["event"] for r in caplog.records] == ["batch"]
