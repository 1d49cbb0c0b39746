"""The token protocol (docs/loop.md): the token table and its conditional writes, a loop's lease on its
token between claim and recursion, the recursion step's event, and the invoke of the next step."""

from __future__ import annotations

from poller.lease.lease import Lease
from poller.lease.recursion import Invoker, LambdaInvoker
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenRow, TokenState, TokenStore, bind_token_table

__all__ = [
    "Invoker",
    "LambdaInvoker",
    "Lease",
    "LoopStep",
    "TokenRow",
    "TokenState",
    "TokenStore",
    "bind_token_table",
]
