"""Where a handler sends its next stage's messages: a configured queue's URL, by its key in the config the
function was deployed with, in the account and region the function runs in (no AWS call)."""

from __future__ import annotations

import functools
from typing import Any

from poller.aws.arn import Arn
from poller.config import Config, config_path, load_config
from producer.exceptions import BadSend


def queue_url(key: str, context: Any) -> str:
    """The URL of the queue ``key`` of the deployment's config (queues.yml, or ``$SQS_LOOPS_CONFIG``), for a
    handler given Lambda's ``context``. The poller's role may send to it when the handler's queue lists it
    in ``sends_to`` (docs/config.md). Raises :class:`~poller.exceptions.UnknownQueue` for a key of no queue."""
    arn = Arn.parse(getattr(context, "invoked_function_arn", "") or "")
    if arn is None or not arn.region or not arn.account:
        raise BadSend(f"queue_url({key!r}): the context has no function ARN to take the account and region from")
    path = config_path()
    config = _config(str(path), path.stat().st_mtime_ns if path.exists() else 0)
    return config.queue(key).queue_url(region=arn.region, account_id=arn.account)


@functools.lru_cache(maxsize=4)
def _config(path: str, _changed_ns: int) -> Config:
    # Read once a container (by path and change time: tests and the sandbox switch files in one process).
    return load_config(path)
