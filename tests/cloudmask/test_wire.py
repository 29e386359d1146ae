"""cloudmask.wire: the hand-written varint and raw_input_contents prefix are protobuf's own encoding."""

from __future__ import annotations

import pytest
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import given
from hypothesis import strategies as st

from cloudmask import wire


@given(st.integers(0, 2**63 - 1))
def test_varint_is_protobufs(n):
    assert wire.varint(n) == _VarintBytes(n)


def test_varint_refuses_negative():
    with pytest.raises(ValueError):
        wire.varint(-1)


@given(st.binary(max_size=300))
def test_prefix_plus_bytes_is_a_raw_input_contents_entry(payload):
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferRequest

    m = ModelInferRequest.FromString(wire.raw_contents_prefix(len(payload)) + payload)
    assert list(m.raw_input_contents) == [payload]
    assert m.SerializeToString() == wire.raw_contents_prefix(len(payload)) + payload
