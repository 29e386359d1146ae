"""The V2 request of the `cloudmask` service: parameters and the `geotiff` input.

Inputs are real kserve InferInput / InferRequest objects, built the ways kserve builds them:
set_data_from_numpy(binary) for REST binary and gRPC raw contents, `.data = [base64]` for REST
JSON, and InferRequest.from_grpc on a real ModelInferRequest protobuf.
"""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter, ModelInferRequest
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput, serialize_byte_tensor

from cloudmask import contract
from transformer import request
from cloudmask.raster.errors import BadInput

TIFF = b"II*\x00" + bytes(range(256)) * 4 + b"\xff\xfe\x00\x80"  # not UTF-8, like any real GeoTIFF


# -- params ------------------------------------------------------------------------------------

def test_defaults():
    for given in (None, {}):
        p = request.params(given)
        assert p == request.Params()
        # scale None: decided from the pixels (reflectance floats 1, DN contract.DEFAULT_SCALE; scale.resolve)
        assert (p.bands, p.window, p.scale, p.offset, p.outputs) == (None, None, None, None, ())


@pytest.mark.parametrize("bands, want", [
    (["B02", "B03", "B04", "B08"], ("B02", "B03", "B04", "B08")),
    ("B02,B03,B04,B08", ("B02", "B03", "B04", "B08")),
    (" B02 , B03,,B8A ", ("B02", "B03", "B8A")),
    ('["B11", "B12"]', ("B11", "B12")),
    (("B04",), ("B04",)),
])
def test_bands(bands, want):
    assert request.params({"bands": bands}).bands == want


@pytest.mark.parametrize("window", [[10, 20, 30, 40], (10, 20, 30, 40), "10,20,30,40", " 10, 20 ,30,40 ",
                                    "[10, 20, 30, 40]", ["10", "20", "30", "40"], '["10","20","30","40"]'])
def test_window_forms(window):
    assert request.params({"window": window}).window == (10, 20, 30, 40)


@pytest.mark.parametrize("window", [
    [1, 2, 3], [1, 2, 3, 4, 5], "1,2,3", "a,b,c,d", "[1, 2, 3", "[1, 2, 3]", ["x", 1, 2, 3], [None, 1, 2, 3],
    '{"col": 1}', 5, {"col": 1, "row": 2, "width": 3, "height": 4}, "", "1.5,2,3,4",
])
def test_bad_window(window):
    with pytest.raises(BadInput, match="window"):
        request.params({"window": window})


@pytest.mark.parametrize("given, scale, offset", [
    ({"scale": 10000, "offset": -1000}, 10000.0, -1000.0),
    ({"scale": "10000", "offset": "-1000"}, 10000.0, -1000.0),
    ({"scale": 1.5e4, "offset": 0}, 15000.0, 0.0),
    ({"scale": "1e4"}, 10000.0, None),
    ({"offset": None}, None, None),
    ({"offset": "-1000.5"}, None, -1000.5),
])
def test_scale_offset(given, scale, offset):
    p = request.params(given)
    assert (p.scale, p.offset) == (scale, offset)
    assert p.scale is None or isinstance(p.scale, float)


@pytest.mark.parametrize("given", [{"scale": "ten"}, {"offset": "x"}, {"scale": [1]}, {"offset": {"a": 1}},
                                   {"scale": True}, {"offset": False}])
def test_scale_offset_not_numbers(given):
    with pytest.raises(BadInput, match="number"):
        request.params(given)


def test_outputs_by_name_and_object():
    outs = [RequestedOutput("mask_geotiff", {"binary_data": True}), RequestedOutput("cloud_cover")]
    assert request.params({}, outs).outputs == ("mask_geotiff", "cloud_cover")
    assert request.params({}, ["mask"]).outputs == ("mask",)
    assert set(request.OUTPUTS) == {"mask", "cloud_cover", "shadow_cover", "mask_geotiff"}


def test_unknown_output():
    with pytest.raises(BadInput, match="probabilities"):
        request.params({}, [RequestedOutput("mask"), RequestedOutput("probabilities")])


def _grpc_request(**params) -> ModelInferRequest:
    r = ModelInferRequest(model_name=contract.SERVICE_NAME, id="t1")
    for key, value in params.items():
        if isinstance(value, InferParameter):
            r.parameters[key].CopyFrom(value)
        elif isinstance(value, str):
            r.parameters[key].string_param = value
        elif isinstance(value, bool):
            r.parameters[key].bool_param = value
        else:
            r.parameters[key].int64_param = value
    r.inputs.add(name=contract.INPUT_GEOTIFF, datatype="BYTES", shape=[1])
    r.raw_input_contents.append(serialize_byte_tensor(np.array([TIFF], dtype=object)).item())
    # over the wire and back, as the server receives it
    return ModelInferRequest.FromString(r.SerializeToString())


def test_params_from_grpc_infer_parameters():
    req = InferRequest.from_grpc(_grpc_request(window="1,2,3,4", bands="B02,B03,B04,B08",
                                               offset=-1000, scale="10000"))
    p = request.params(req.parameters)
    assert p.window == (1, 2, 3, 4)
    assert p.bands == ("B02", "B03", "B04", "B08")
    assert (p.scale, p.offset) == (10000.0, -1000.0)
    assert bytes(request.geotiff_bytes(req.inputs)) == TIFF


@pytest.mark.parametrize("key", ["offset", "scale"])
def test_params_from_grpc_double_parameter_is_not_silently_dropped(key):
    value = -1000.0 if key == "offset" else 5000.0
    # the exact bytes tritonclient.grpc puts on the wire: field 4, wire type 1 (64-bit double)
    double = InferParameter.FromString(b"\x21" + struct.pack("<d", value))
    req = InferRequest.from_grpc(_grpc_request(**{key: double}))
    # kserve's proto cannot carry it: the server must refuse it loudly, not use a default
    with pytest.raises(BadInput, match=key):
        request.params(req.parameters)


# -- geotiff_bytes -----------------------------------------------------------------------------

def _binary_input(payload: bytes, name=contract.INPUT_GEOTIFF) -> InferInput:
    inp = InferInput(name=name, shape=[1], datatype="BYTES")
    inp.set_data_from_numpy(np.array([payload], dtype=object), binary_data=True)
    return inp


def _json_input(text, name=contract.INPUT_GEOTIFF, shape=(1,), datatype="BYTES") -> InferInput:
    inp = InferInput(name=name, shape=list(shape), datatype=datatype)
    inp.data = text if isinstance(text, list) else [text]
    return inp


def test_raw_bytes_binary():
    assert bytes(request.geotiff_bytes([_binary_input(TIFF)])) == TIFF


def test_raw_bytes_among_other_inputs():
    other = InferInput(name="extra", shape=[1], datatype="FP32")
    other.set_data_from_numpy(np.array([1.0], np.float32))
    assert bytes(request.geotiff_bytes([other, _binary_input(TIFF)])) == TIFF


def test_base64_json():
    b64 = base64.b64encode(TIFF).decode("ascii")
    assert request.geotiff_bytes([_json_input(b64)]) == TIFF


def test_grpc_raw_contents():
    req = InferRequest.from_grpc(_grpc_request())
    assert bytes(request.geotiff_bytes(req.inputs)) == TIFF


def test_wrong_datatype():
    inp = InferInput(name=contract.INPUT_GEOTIFF, shape=[1], datatype="FP32")
    inp.set_data_from_numpy(np.array([1.0], np.float32))
    with pytest.raises(BadInput, match="BYTES.*FP32"):
        request.geotiff_bytes([inp])


def test_wrong_shape():
    inp = InferInput(name=contract.INPUT_GEOTIFF, shape=[2], datatype="BYTES")
    inp.set_data_from_numpy(np.array([TIFF, TIFF], dtype=object), binary_data=True)
    with pytest.raises(BadInput, match=r"shape \[1\].*\[2\]"):
        request.geotiff_bytes([inp])
    with pytest.raises(BadInput, match="shape"):
        request.geotiff_bytes([_json_input([[base64.b64encode(TIFF).decode()]], shape=(1, 1))])


@pytest.mark.parametrize("names", [[], ["image"], ["GeoTIFF"], ["geotiff", "geotiff"]])
def test_missing_or_wrong_name(names):
    with pytest.raises(BadInput, match="geotiff"):
        request.geotiff_bytes([_binary_input(TIFF, name=n) for n in names])


@pytest.mark.parametrize("text", ["this is not base64!", "SUkqAA=", "SUkq AA=", "€€€€"])
def test_non_base64_text(text):
    with pytest.raises(BadInput, match="base64"):
        request.geotiff_bytes([_json_input(text)])


def test_line_wrapped_base64_is_accepted():
    """base64.encodebytes and the `base64` CLI wrap lines every 76 characters."""
    assert request.geotiff_bytes([_json_input(base64.encodebytes(TIFF * 40).decode())]) == TIFF * 40


@pytest.mark.parametrize("window", [[1.5, 2, 3, 4], "1.5,2,3,4"])
def test_fractional_window_is_refused_not_truncated(window):
    with pytest.raises(BadInput, match="integers"):
        request.params({"window": window})


def test_raw_data_that_does_not_parse():
    inp = InferInput(name=contract.INPUT_GEOTIFF, shape=[1], datatype="BYTES")
    inp._raw_data = b"\xff\xff\xff\x7f" + b"short"  # length prefix far past the end: a broken binary body
    with pytest.raises(BadInput, match="4 bytes .little-endian. followed by the file"):
        request.geotiff_bytes([inp])
    inp._raw_data = b"\x05\x00"  # shorter than a length prefix
    with pytest.raises(BadInput, match="4 bytes .little-endian. followed by the file"):
        request.geotiff_bytes([inp])


def test_raw_inputs_give_the_file_where_it_lies_without_a_copy():
    """gRPC (from_grpc's raw contents) and REST binary (a view into the body): the GeoTIFF is an
    Embedded over the very buffer kserve holds, past the element's 4-byte length."""
    from cloudmask.kserve_compat import raw_span
    from cloudmask.raster.decode import Embedded

    req = InferRequest.from_grpc(_grpc_request())
    emb = request.geotiff_bytes(req.inputs)
    assert isinstance(emb, Embedded) and emb.buffer is req.inputs[0]._raw_data
    assert (emb.offset, len(emb)) == (4, len(TIFF)) and bytes(emb) == TIFF
    body = b"{}" + struct.pack("<I", len(TIFF)) + TIFF + b"tail"
    inp = InferInput(name=contract.INPUT_GEOTIFF, shape=[1], datatype="BYTES")
    inp._raw_data, inp._raw_span = memoryview(body)[2:-4], (body, 2, len(TIFF) + 4)
    assert raw_span(inp) == (body, 2, len(TIFF) + 4)
    emb = request.geotiff_bytes([inp])
    assert emb.buffer is body and (emb.offset, emb.length) == (6, len(TIFF)) and bytes(emb) == TIFF


def test_a_raw_tensor_that_is_not_one_element_is_still_refused():
    inp = InferInput(name=contract.INPUT_GEOTIFF, shape=[1], datatype="BYTES")
    inp._raw_data = struct.pack("<I", len(TIFF) + 10) + TIFF  # a length past the end
    with pytest.raises(BadInput, match="length"):
        request.geotiff_bytes([inp])


# -- the `raster` input: pixels as a tensor --------------------------------------------------------------------

def _raster(shape, raw: bytes | None, datatype="UINT16", data=None):
    inp = InferInput(name=contract.INPUT_RASTER, shape=list(shape), datatype=datatype, data=data)
    if raw is not None:
        inp._raw_data = raw  # as kserve keeps a binary (REST) or raw gRPC tensor
    return inp


def test_raster_array_is_a_view_of_the_received_bytes():
    px = np.arange(2 * 3 * 4, dtype="<u2").reshape(2, 3, 4)
    raw = px.tobytes()
    got = request.raster_array([_raster(px.shape, raw)])
    assert np.array_equal(got, px) and np.shares_memory(got, np.frombuffer(raw, np.uint8))


@pytest.mark.parametrize("shape,nbytes,words", [
    ([2048, 2 ** 53 + 3, 1], 12288, "no side may exceed"),  # int64 products would wrap to 6144
    ([2 ** 33, 2 ** 31, 3], 0, "no side may exceed"),  # ... or to 0
    ([2, 3, 4], 47, "holds 47 bytes"),
    ([2, 3], 12, "[bands, height, width]"),
    ([2, 0, 4], 0, "[bands, height, width]"),
    ([2, -3, 4], 0, "[bands, height, width]"),
])
def test_raster_array_refuses_a_shape_its_bytes_do_not_fill(shape, nbytes, words):
    with pytest.raises(BadInput) as e:
        request.raster_array([_raster(shape, b"\0" * nbytes)])
    assert words in str(e.value)


def test_raster_array_from_json_and_the_wrong_datatype():
    got = request.raster_array([_raster([1, 2, 2], None, data=[1, 2, 3, 4])])
    assert got.dtype == np.uint16 and got.tolist() == [[[1, 2], [3, 4]]]
    with pytest.raises(BadInput, match="must be one of"):
        request.raster_array([_raster([1, 2, 2], None, datatype="BOOL", data=[True] * 4)])
    assert request.raster_array([InferInput(name="geotiff", shape=[1], datatype="BYTES", data=["x"])]) is None


def test_raster_only_parameters_parse_and_refuse_bad_values():
    p = request.params({"crs": "EPSG:32633", "transform": "10,0,5e5,0,-10,4e6", "nodata": "0",
                        "tags": '{"BOA_ADD_OFFSET": -1000}'})
    assert p.transform == (10.0, 0.0, 5e5, 0.0, -10.0, 4e6) and p.nodata == 0.0
    assert p.tags == {"BOA_ADD_OFFSET": "-1000"} and p.crs == "EPSG:32633"
    for bad in ({"tags": "not json"}, {"tags": "[1]"}, {"nodata": "abc"}, {"transform": "a,b"}):
        with pytest.raises(BadInput):
            request.params(bad)
