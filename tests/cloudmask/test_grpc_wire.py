"""kserve_compat.split_raw_contents / WireInferRequest: the raw gRPC ModelInfer path's protobuf wire splitter,
against the real ModelInferRequest parser (upb): the same message, the same raw contents, or both refuse."""

from __future__ import annotations

import struct

import pytest
from google.protobuf.internal.encoder import _VarintBytes
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.errors import InvalidInput
from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter, ModelInferRequest

from cloudmask.kserve_compat import WireFormatError, WireInferRequest, raw_span, split_raw_contents


def field(number: int, wire_type: int, payload: bytes = b"") -> bytes:
    """One field as protobuf writes it: tag, then (length-delimited) length and payload, or the payload."""
    tag = _VarintBytes((number << 3) | wire_type)
    return tag + (_VarintBytes(len(payload)) + payload if wire_type == 2 else payload)


def real(wire: bytes):
    """What protobuf makes of `wire`: (the message without raw contents, serialised; the raw contents) or None."""
    try:
        m = ModelInferRequest.FromString(wire)
    except DecodeError:
        return None
    raw = list(m.raw_input_contents)
    m.ClearField("raw_input_contents")
    return m.SerializeToString(deterministic=True), raw


def split(wire: bytes):
    """The same from split_raw_contents and the real parser on what it leaves."""
    try:
        rest, spans = split_raw_contents(wire)
        m = ModelInferRequest.FromString(rest)
    except (WireFormatError, DecodeError):
        return None
    return m.SerializeToString(deterministic=True), [wire[s:s + n] for s, n in spans]


def request(raw=(b"II*\x00tif", b"", b"\x00" * 300), **kw) -> ModelInferRequest:
    m = ModelInferRequest(model_name="cloudmask", model_version="3", id="req-1", **kw)
    m.inputs.add(name="geotiff", datatype="BYTES", shape=[1]).parameters["binary_data_size"].int64_param = 7
    m.outputs.add(name="mask")
    m.parameters["window"].string_param = "0,0,512,512"
    m.parameters["strict"].bool_param = True
    m.raw_input_contents.extend(raw)
    return m


def test_several_raw_contents_are_views_at_their_place():
    m = request()
    wire = m.SerializeToString()
    rest, spans = split_raw_contents(wire)
    assert [wire[s:s + n] for s, n in spans] == list(m.raw_input_contents)
    parsed = ModelInferRequest.FromString(rest)
    assert len(parsed.raw_input_contents) == 0 and parsed.id == "req-1" and parsed.model_version == "3"
    assert len(rest) == len(wire) - sum(len(_VarintBytes(n)) + 1 + n for _, n in spans)

    req = WireInferRequest.parse(wire)
    assert req.model_name == "cloudmask" and req.inputs[0].name == "geotiff" and req.outputs[0].name == "mask"
    assert req.parameters["window"] == InferParameter(string_param="0,0,512,512")
    for view, (start, size) in zip(req.raw_input_contents, spans):
        assert isinstance(view, memoryview) and view.obj is wire and len(view) == size

        class Inp:
            _raw_data = view

        assert raw_span(Inp) == (wire, start if size else 0, size)  # where it lies in the wire bytes: no copy


def test_fields_in_any_order_unknown_fields_and_packed_fields_are_kept():
    """Raw contents first, between and after the rest; unknown fields of every wire type (a packed repeated
    field is one length-delimited field); protobuf keeps unknown fields, and so does the split."""
    head = request(raw=()).SerializeToString()
    packed = b"".join(_VarintBytes(v) for v in (1, 300, 2**40))
    wire = (field(7, 2, b"first") + field(99, 0, _VarintBytes(12345)) + head[:11] + field(7, 2, b"second")
            + head[11:] + field(100, 2, packed) + field(101, 1, struct.pack("<d", 1.5))
            + field(102, 5, struct.pack("<f", 2.5)) + field(103, 3, field(1, 0, b"\x01")) + field(103, 4)
            + field(7, 0, b"\x05") + field(7, 2, b"third"))
    assert split(wire) == real(wire)
    assert split(wire)[1] == [b"first", b"second", b"third"]
    rest, _ = split_raw_contents(wire)
    assert field(100, 2, packed) in rest and field(7, 0, b"\x05") in rest  # field 7 as a varint: unknown, kept


@pytest.mark.parametrize("wire,words", [
    (field(7, 2, b"abcdef")[:-2], "field 7 at byte 0: its length (6 bytes) runs past the end"),
    (field(1, 2, b"cloudmask")[:5], "field 1 at byte 0: its length (9 bytes) runs past the end"),
    (b"\x3a\xff\xff", "length of field 7 at byte 1 is cut off"),
    (field(99, 0, b"\xff\xff"), "varint at byte 2 is cut off"),
    (field(99, 0, b"\xff" * 10 + b"\x01"), "varint at byte 2 is longer than 10 bytes"),
    (field(99, 1, b"1234"), "field 99 at byte 0: its 8-byte value runs past the end"),
    (field(99, 5, b"12"), "field 99 at byte 0: its 4-byte value runs past the end"),
    (b"\x80\x80\x80\x80\x80\x01", "field tag at byte 0 is longer than 5 bytes"),
    (b"\x00", "field number 0 is outside"),
    (b"\x0e", "wire type 6"),
    (field(5, 4), "end of group 5 at byte 0 without its start"),
    (field(5, 3) + field(6, 4), "group 5 at byte 0 is closed as group 6 at byte 1"),
    (field(5, 3) + field(1, 0, b"\x01"), "field tag at byte 3 is cut off"),
])
def test_malformed_framing_is_a_clear_error(wire, words):
    with pytest.raises(WireFormatError, match=words.replace("(", r"\(").replace(")", r"\)")):
        split_raw_contents(wire)
    assert real(wire) is None  # protobuf refuses it too
    with pytest.raises(InvalidInput, match="not a valid inference.ModelInferRequest"):
        WireInferRequest.parse(wire)


def test_bad_fields_inside_are_the_real_parsers_to_refuse():
    """Framing fine, contents not: an input that is not an InferInputTensor, a model name that is not UTF-8."""
    for wire in (field(5, 2, b"\xff\xff") + field(7, 2, b"x"), field(1, 2, b"\xff\xfe") + field(7, 2, b"x")):
        assert real(wire) is None
        with pytest.raises(InvalidInput, match="not a valid inference.ModelInferRequest"):
            WireInferRequest.parse(wire)


def test_too_many_fields_are_refused_in_groups_too():
    """The walk is Python: a message of many empty fields is refused after _MAX_FIELDS, at the top or in a group."""
    from cloudmask.kserve_compat import _MAX_FIELDS

    split_raw_contents(field(99, 0, b"\x01") * _MAX_FIELDS)
    with pytest.raises(WireFormatError, match=f"more than {_MAX_FIELDS} fields"):
        split_raw_contents(field(99, 0, b"\x01") * (_MAX_FIELDS + 1))
    with pytest.raises(WireFormatError, match=f"more than {_MAX_FIELDS} fields"):
        split_raw_contents(field(9, 3) + field(99, 0, b"\x01") * _MAX_FIELDS + field(9, 4))


def test_a_message_without_raw_contents_is_handed_on_uncopied():
    wire = field(1, 2, b"cloudmask") + field(99, 0, b"\x01")
    rest, spans = split_raw_contents(wire)
    assert rest is wire and spans == []


# -- against the real parser ----------------------------------------------------------------------------------
NUMBERS = st.one_of(st.just(7), st.integers(1, 8), st.integers(9, 2**29 - 1))  # 7: raw_input_contents
PAYLOAD = st.binary(max_size=40)


@st.composite
def fields(draw, depth=0):
    number = draw(NUMBERS)
    wire_type = draw(st.sampled_from([0, 1, 2, 2, 2, 5] + ([3] if depth < 3 else [])))
    if wire_type == 0:
        return field(number, 0, _VarintBytes(draw(st.integers(0, 2**64 - 1))))
    if wire_type in (1, 5):
        return field(number, wire_type, draw(st.binary(min_size=8 if wire_type == 1 else 4,
                                                        max_size=8 if wire_type == 1 else 4)))
    if wire_type == 3:
        inner = draw(st.lists(fields(depth=depth + 1), max_size=3))
        return field(number, 3) + b"".join(inner) + field(number, 4)
    if number in (5, 6) and draw(st.booleans()):  # a well-formed input or output now and then
        tensor = ModelInferRequest.InferInputTensor(name=draw(st.text(max_size=8)), datatype="BYTES", shape=[1])
        return field(number, 2, tensor.SerializeToString())
    if number in (1, 2, 3) and draw(st.booleans()):
        return field(number, 2, draw(st.text(max_size=12)).encode())
    return field(number, 2, draw(PAYLOAD))


MESSAGES = st.lists(fields(), max_size=12).map(b"".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES)
def test_split_agrees_with_protobuf_on_messages(wire):
    assert split(wire) == real(wire)


@settings(max_examples=400, deadline=None)
@given(MESSAGES, st.data())
def test_split_agrees_with_protobuf_on_cut_or_damaged_messages(wire, data):
    if wire:
        i = data.draw(st.integers(0, len(wire) - 1))
        wire = data.draw(st.sampled_from([wire[:i], wire[:i] + bytes([data.draw(st.integers(0, 255))]) + wire[i + 1:]]))
    assert split(wire) == real(wire)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_split_agrees_with_protobuf_on_any_bytes(wire):
    assert split(wire) == real(wire)
