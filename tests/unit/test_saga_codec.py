"""The order desk's saga record: decoding what was encoded gives the saga back, field for field
(the codec writes a saga as a bare JSON array: a field out of place would not fail loudly)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from stockflow.core.policy import Policy
from stockflow.core.saga import LineState, Saga, place
from stockflow.models import Fulfilment
from stockflow.processing.codec import decode_saga, encode_new_single, encode_saga

from fixtures import JSON_IDS, SAGA_MS, SAGAS


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(saga=SAGAS)
def test_a_saga_decodes_to_what_was_encoded(saga: Saga) -> None:
    decoded = decode_saga(encode_saga(saga))
    assert decoded == saga
    assert type(decoded.lines) is tuple and decoded.placed_at == saga.placed_at


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    order_id=JSON_IDS,
    product_id=JSON_IDS,
    quantity=st.integers(1, 10**9),
    fulfilment=st.sampled_from(["all_or_nothing", "partial"]),
    ttl_ms=st.none() | st.integers(1, 10**9),
    now_ms=SAGA_MS,
    started_ms=st.none() | SAGA_MS,
    placed_at=st.tuples(st.integers(0, 1000), st.integers(0, 2**40)),
)
def test_a_placed_single_line_saga_encodes_as_any_saga(
    order_id: str,
    product_id: str,
    quantity: int,
    fulfilment: Fulfilment,
    ttl_ms: int | None,
    now_ms: int,
    started_ms: int | None,
    placed_at: tuple[int, int],
) -> None:
    # The order desk encodes the saga place() starts for a forwarded single-line order from a
    # template (encode_new_single), and its Reserve: byte for byte what encode_saga and to_json
    # write, for any ids.
    decision = place(
        None,
        order_id=order_id,
        lines=[LineState(product_id, quantity)],
        fulfilment=fulfilment,
        ttl_ms=ttl_ms,
        now_ms=now_ms,
        reply_partition=placed_at[0],
        policy=Policy(),
        placed_at=placed_at,
        started_ms=started_ms,
    )
    saga = decision.saga
    assert saga is not None and saga.forwards
    (reserve,) = decision.raw_commands
    line = saga.lines[0]
    encoded = encode_new_single(
        order_id,
        line.product_id,
        line.quantity,
        fulfilment,
        saga.placed_at_ms,
        saga.deadline_ms,
        saga.expires_at_ms,
        saga.reply_partition,
        placed_at,
    )
    assert encoded == (encode_saga(saga), to_json(reserve))
