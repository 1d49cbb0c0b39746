"""The time budget of a loop step: what it keeps back for the recursion, what a forwarding target's
connection may take, how far ahead a rate-limited loop receives, how often the handler tick runs.
Values in seconds. The config checks that a queue's settings fit these; the loop spends them."""

from __future__ import annotations

RECURSE_RESERVE_S = 3
"""Time kept at the end of an invocation to delete the last batch and invoke the next step."""

CONNECT_TIMEOUT_S = 3.05
"""A forwarding target's connect timeout (a little over TCP's 3-s retransmit); the rest of its time is the
queue's ``handler_timeout_s`` (docs/downstream.md)."""

RECEIVE_AHEAD_S = 2.0
"""A loop that dispatches record by record under a rate limit receives no more than its share pays for in
this many seconds: a received message waiting for its turn still uses up its visibility timeout."""

KEEPER_MAX_INTERVAL_S = 10
"""While a handler runs, the keeper thread looks at the heartbeat at least this often (and at least every
half heartbeat interval)."""

KEEPER_JOIN_S = 0.5
"""How long the end of a batch waits for a keeper tick in flight (a heartbeat or a visibility extension caught
in a slow call) before it goes on without it: the tick's client timeouts end it by themselves."""

TURN_HORIZON_S = 0.15
"""A call under a rate limit spends only slots of its loop's share at most this old (a loop that missed its
slot may still use it this late): all loops together then exceed the limit by at most this much of a second
of it in any window (5 s: 1.03 x; docs/downstream.md)."""

DRAIN_MARGIN_S = 1.0
"""A retiring loop under a shared downstream goes on spending its share until it ends (its 0 counts): it
starts no receive within this long of that end, and asks for what the share pays for until half of it
before (poller/downstream/coordinator.py ``Turns.drain``)."""
