"""The token table's conditional operations against moto: who may write, and what a lost write says."""

from __future__ import annotations

import pytest

from poller.exceptions import TokenExists, TokenLost
from poller.lease.tokens import TokenStore

Q = "https://sqs.us-east-1.amazonaws.com/123456789012/work"


def claim(tokens: TokenStore, generation: int, *, loop_id: str = "L1", claim_id: str = "c", now_ms: int = 1) -> int:
    return tokens.claim(Q, "t1", loop_id=loop_id, generation=generation, claim_id=claim_id, now_ms=now_ms).generation


def test_create_starts_at_generation_zero_without_heartbeat(tokens: TokenStore) -> None:
    state = tokens.create(Q, "t1", loop_id="L1", now_ms=100)
    assert (state.generation, state.last_used, state.created_at) == (0, None, 100)
    assert tokens.create(Q, "t1", loop_id="L1", now_ms=200).created_at == 200  # a retried create
    with pytest.raises(TokenExists):
        tokens.create(Q, "t1", loop_id="L2", now_ms=300)


def test_claim_advances_generation_and_fences_duplicates(tokens: TokenStore) -> None:
    tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    assert claim(tokens, 0, claim_id="first", now_ms=5) == 1
    assert tokens.get(Q, "t1").last_used == 5  # type: ignore[union-attr]
    with pytest.raises(TokenLost) as lost:  # a second delivery of step 0
        claim(tokens, 0, claim_id="second")
    assert lost.value.reason == "superseded"
    assert claim(tokens, 1, claim_id="next") == 2


def test_a_retried_claim_request_is_not_a_duplicate(tokens: TokenStore) -> None:
    """botocore may resend a claim whose answer was lost: the same claim_id must still succeed."""
    tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    assert claim(tokens, 0, claim_id="inv-1") == 1
    assert claim(tokens, 0, claim_id="inv-1") == 1
    with pytest.raises(TokenLost):
        claim(tokens, 0, claim_id="inv-2")


def test_claim_of_a_deleted_or_taken_over_row(tokens: TokenStore) -> None:
    with pytest.raises(TokenLost) as lost:
        claim(tokens, 0)
    assert lost.value.reason == "deleted"
    seen = tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    tokens.takeover(seen, new_loop_id="L2", now_ms=10)
    with pytest.raises(TokenLost) as lost:
        claim(tokens, 0, loop_id="L1")
    assert lost.value.reason == "taken_over"


def test_heartbeat_only_for_the_owner_of_the_claimed_generation(tokens: TokenStore) -> None:
    tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    claim(tokens, 0)
    state = tokens.heartbeat(Q, "t1", loop_id="L1", generation=1, now_ms=50)
    assert (state.last_used, state.retiring) == (50, False)
    with pytest.raises(TokenLost) as lost:
        tokens.heartbeat(Q, "t1", loop_id="L1", generation=0, now_ms=60)
    assert lost.value.reason == "superseded"
    with pytest.raises(TokenLost) as lost:
        tokens.heartbeat(Q, "t1", loop_id="L9", generation=1, now_ms=60)
    assert lost.value.reason == "taken_over"
    assert tokens.get(Q, "t1").last_used == 50  # type: ignore[union-attr]


def test_takeover_is_conditional_on_the_heartbeat_seen(tokens: TokenStore) -> None:
    tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    claim(tokens, 0, now_ms=10)
    seen = tokens.get(Q, "t1")
    assert seen is not None
    tokens.heartbeat(Q, "t1", loop_id="L1", generation=1, now_ms=20)  # the old loop is alive after all
    with pytest.raises(TokenLost):
        tokens.takeover(seen, new_loop_id="L2", now_ms=30)
    assert tokens.get(Q, "t1").loop_id == "L1"  # type: ignore[union-attr]

    fresh = tokens.get(Q, "t1")
    assert fresh is not None
    taken = tokens.takeover(fresh, new_loop_id="L2", now_ms=40)
    assert (taken.loop_id, taken.generation, taken.last_used) == ("L2", 2, 40)
    assert tokens.takeover(fresh, new_loop_id="L2", now_ms=41).loop_id == "L2"  # a retried takeover
    with pytest.raises(TokenLost):
        tokens.heartbeat(Q, "t1", loop_id="L1", generation=1, now_ms=50)


def test_takeover_of_a_row_that_never_heartbeat(tokens: TokenStore) -> None:
    seen = tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    assert tokens.takeover(seen, new_loop_id="L2", now_ms=5).generation == 1


def test_retire_is_seen_by_the_next_heartbeat_and_release_deletes(tokens: TokenStore) -> None:
    tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    claim(tokens, 0)
    assert tokens.retire(Q, "t1", now_ms=70).retiring_since == 70
    assert tokens.retire(Q, "t1", now_ms=80).retiring_since == 70  # the first request's time stays
    assert tokens.heartbeat(Q, "t1", loop_id="L1", generation=1, now_ms=90).retiring
    assert not tokens.release(Q, "t1", loop_id="L2")
    assert tokens.release(Q, "t1", loop_id="L1")
    assert tokens.get(Q, "t1") is None
    assert not tokens.release(Q, "t1")
    with pytest.raises(TokenLost):
        tokens.retire(Q, "t1", now_ms=100)


def test_record_error_only_by_the_owner(tokens: TokenStore) -> None:
    tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    tokens.record_error(Q, "t1", loop_id="L2", error="not mine", now_ms=1)
    assert tokens.get(Q, "t1").last_error is None  # type: ignore[union-attr]
    tokens.record_error(Q, "t1", loop_id="L1", error="queue gone", now_ms=2)
    assert tokens.get(Q, "t1").last_error == "queue gone"  # type: ignore[union-attr]


def test_tokens_of_follows_pages(tokens: TokenStore) -> None:
    for n in range(7):
        tokens.create(Q, f"t{n}", loop_id=f"L{n}", now_ms=n)
    tokens.create(Q + "-other", "t0", loop_id="X", now_ms=0)
    rows = list(tokens.tokens_of(Q, page_size=2))
    assert sorted(r.token for r in rows) == [f"t{n}" for n in range(7)]


def test_unretire_keeps_the_row_for_its_loop(tokens: TokenStore) -> None:
    tokens.create(Q, "t1", loop_id="L1", now_ms=0)
    retired = tokens.retire(Q, "t1", now_ms=5)
    assert not tokens.unretire(retired).retiring
    assert not tokens.heartbeat(Q, "t1", loop_id="L1", generation=0, now_ms=6).retiring
    tokens.release(Q, "t1")
    with pytest.raises(TokenLost):
        tokens.unretire(retired)


def test_queue_urls_lists_every_queue_with_rows(tokens: TokenStore) -> None:
    for n in range(5):
        tokens.create(f"{Q}-{n % 2}", f"t{n}", loop_id=f"L{n}", now_ms=n)
    assert tokens.queue_urls() == {f"{Q}-0", f"{Q}-1"}
