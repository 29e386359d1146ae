"""A V2 client of the `cloudmask` service: one GeoTIFF in, one mask out, over REST or gRPC.

Uses tritonclient (the reference V2 client). Imports only the transport it needs, so the
REST path never loads gRPC protobufs (kserve's and tritonclient's clash in one process).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from cloudmask import contract, wire


@dataclasses.dataclass
class Answer:
    mask: np.ndarray
    cloud_cover: float
    shadow_cover: float
    model_version: str
    mask_geotiff: bytes | None = None
    parameters: dict = dataclasses.field(default_factory=dict)


class ServiceError(RuntimeError):
    """The service refused the request; `status` is the HTTP status or gRPC code name."""

    def __init__(self, status, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Unreachable(ConnectionError):
    """The service could not be reached or did not answer: refused, reset or timed-out connections,
    503 / UNAVAILABLE (retried: replicas scaling up, a pod restarting), 504 / DEADLINE_EXCEEDED (not)."""

    def __init__(self, message: str, retry: bool = True):
        super().__init__(message)
        self.retry = retry


UNAVAILABLE = {"503", "StatusCode.UNAVAILABLE"}
TIMED_OUT = {"504", "StatusCode.DEADLINE_EXCEEDED"}


def _params(bands=None, window=None, scale=None, offset=None, level=None) -> dict:
    p = {"level": level} if level else {}
    if bands:
        p["bands"] = ",".join(bands) if not isinstance(bands, str) else bands
    if window is not None:
        p["window"] = ",".join(str(int(v)) for v in window)
    # numbers as text: gRPC's V2 parameters carry no floats in kserve 0.21
    if scale is not None:
        p["scale"] = f"{float(scale):g}"
    if offset is not None:
        p["offset"] = f"{float(offset):g}"
    return p


class Client:
    def __init__(self, url: str | None = None, grpc: str | None = None, model: str = contract.SERVICE_NAME,
                 headers: dict | None = None, timeout_s: float = 300.0, retries: int = 4, backoff_s: float = 0.5):
        if bool(url) == bool(grpc):
            raise ValueError("give exactly one of url (REST) or grpc (host:port)")
        self.target = url or grpc
        self.retries, self.backoff_s = retries, backoff_s
        self.model = model
        self.headers = headers or {}
        self.timeout_s = timeout_s
        if grpc:
            import tritonclient.grpc as tc

            self._tc = tc
            # a whole scene window can exceed gRPC's 4 MB default in either direction
            opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
            self._c = tc.InferenceServerClient(grpc, channel_args=opts)
            self._raw = _RawModelInfer(grpc, opts)
            self.protocol = "grpc"
        else:
            import tritonclient.http as tc

            self._tc = tc
            host = url.split("://", 1)[-1].rstrip("/")
            self._c = tc.InferenceServerClient(host, ssl=url.startswith("https://"),
                                               connection_timeout=timeout_s, network_timeout=timeout_s)
            self.protocol = "rest"

    def close(self):
        try:
            self._c.close()
        finally:
            if self.protocol == "grpc":
                self._raw.close()

    def _call(self, fn):
        """fn() with failures as ServiceError (refused) or Unreachable; retryable Unreachable tried again up to
        `retries` times, waiting backoff_s, 2 backoff_s, ... (at most 8 s, with jitter)."""
        import tenacity

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retries + 1), reraise=True,
            wait=tenacity.wait_exponential_jitter(initial=self.backoff_s, max=8.0, jitter=self.backoff_s),
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, Unreachable) and e.retry))
        return retrying(self._once, fn)

    def _once(self, fn):
        try:
            return fn()
        except self._tc.InferenceServerException as e:
            status = str(e.status())
            if status in UNAVAILABLE or status in TIMED_OUT:
                raise Unreachable(f"{self.target} did not serve the request ({status}): {e.message()}",
                                  retry=status in UNAVAILABLE) from None
            raise ServiceError(status, e.message()) from None
        except OSError as e:  # refused, reset, timed out, no such host (tritonclient.http raises them as they are)
            raise Unreachable(f"cannot reach {self.target}: {e}") from None

    def ready(self) -> bool:
        try:
            return bool(self._c.is_model_ready(self.model, headers=self.headers))
        except Exception:
            return False

    def predict(self, tif: bytes | memoryview, bands=None, window=None, scale=None, offset=None,
                want_geotiff: bool = False, level: str | None = None) -> Answer:
        return self._infer(contract.INPUT_GEOTIFF, [tif], bands, window, scale, offset, want_geotiff, level)

    def predict_raster(self, data: np.ndarray, bands, crs=None, transform=None, nodata=None, tags=None,
                       window=None, scale=None, offset=None, want_geotiff: bool = False,
                       level: str | None = None) -> Answer:
        """The pixels themselves, (bands, height, width) of the raster's own type, named by `bands` (one each, in
        order), with their georeferencing: crs (WKT or e.g. "EPSG:32633"), transform (an affine.Affine or its six
        coefficients), nodata, tags (the file's metadata: BOA_ADD_OFFSET, the processing level). No GeoTIFF is
        written here nor decoded by the service; the answer is the same as for a GeoTIFF of those pixels."""
        data = np.ascontiguousarray(data)
        dtypes = {v: k for k, v in contract.RASTER_DATATYPES.items()}
        if data.ndim != 3 or data.dtype.name not in dtypes:
            raise ValueError(f"raster must be (bands, height, width) of {sorted(dtypes)}, got "
                             f"{data.dtype.name} {list(data.shape)}")
        data = data.astype(data.dtype.newbyteorder("<"), copy=False)  # V2 tensors are little-endian
        extra = {}
        if crs is not None:
            from rasterio.crs import CRS

            extra["crs"] = crs if isinstance(crs, str) else CRS.from_user_input(crs).to_wkt()  # CRS, EPSG int, ...
        if transform is not None:
            extra["transform"] = ",".join(repr(float(v)) for v in tuple(transform)[:6])
        if nodata is not None:
            extra["nodata"] = repr(float(nodata))
        if tags:
            extra["tags"] = json.dumps({str(k): str(v) for k, v in tags.items()})
        return self._infer(contract.INPUT_RASTER, data, bands, window, scale, offset, want_geotiff, level,
                           extra=extra, datatype=dtypes[data.dtype.name])

    def predict_reference(self, uris=None, stac_item=None, bands=None, window=None, scale=None, offset=None,
                          want_geotiff: bool = False, level: str | None = None) -> Answer:
        """The service reads the pixels itself: `uris` (one multi-band raster, or one URL per band) or `stac_item`
        (the item's JSON text or its URL); the service must allow the URLs (--allowed_uri_prefixes)."""
        if (uris is None) == (stac_item is None):
            raise ValueError("give exactly one of uris or stac_item")
        if uris is not None:
            items = [uris] if isinstance(uris, str) else list(uris)
            return self._infer(contract.INPUT_URI, [u.encode() for u in items], bands, window, scale, offset,
                               want_geotiff, level)
        item = stac_item if isinstance(stac_item, str) else json.dumps(stac_item)
        return self._infer(contract.INPUT_STAC_ITEM, [item.encode()], bands, window, scale, offset, want_geotiff,
                           level)

    def _infer(self, input_name: str, elements, bands, window, scale, offset, want_geotiff,
               level, extra=None, datatype: str = "BYTES") -> Answer:
        """elements: the BYTES tensor's items, or (datatype not BYTES) the tensor as an array."""
        tc = self._tc
        names = [contract.OUTPUT_MASK, contract.OUTPUT_CLOUD_COVER, contract.OUTPUT_SHADOW_COVER]
        if want_geotiff:
            names.append(contract.OUTPUT_MASK_GEOTIFF)
        sent = dict(_params(bands, window, scale, offset, level), **(extra or {})) or None
        if self.protocol == "grpc":
            res = self._call(lambda: self._raw(self.model, input_name, elements, names, sent, self.headers,
                                               self.timeout_s, datatype))
            resp = res.get_response()
            params = {k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in resp.parameters.items()
                      if v.WhichOneof("parameter_choice")}
            version = resp.model_version
        else:
            if datatype == "BYTES":
                inp = tc.InferInput(input_name, [len(elements)], "BYTES")
                # tritonclient's BYTES tensors take bytes, not a view of a file in memory
                items = [bytes(e) if isinstance(e, memoryview) else e for e in elements]
                inp.set_data_from_numpy(np.array(items, dtype=np.object_), binary_data=True)
            else:
                inp = tc.InferInput(input_name, list(elements.shape), datatype)
                inp.set_data_from_numpy(elements, binary_data=True)
            outs = [tc.InferRequestedOutput(n, binary_data=True) for n in names]
            res = self._call(lambda: self._c.infer(self.model, [inp], outputs=outs, headers=self.headers,
                                                   parameters=sent))
            resp = res.get_response()
            params = {k: (v.get("string_param") or v.get("int64_param") or v.get("double_param")
                          or v.get("bool_param")) if isinstance(v, dict) else v
                      for k, v in (resp.get("parameters") or {}).items()}
            version = resp.get("model_version", "")
        geotiff = None
        if want_geotiff:
            geotiff = bytes(res.as_numpy(contract.OUTPUT_MASK_GEOTIFF).reshape(-1)[0])
        return Answer(
            mask=res.as_numpy(contract.OUTPUT_MASK),
            cloud_cover=float(res.as_numpy(contract.OUTPUT_CLOUD_COVER)[0]),
            shadow_cover=float(res.as_numpy(contract.OUTPUT_SHADOW_COVER)[0]),
            model_version=version, mask_geotiff=geotiff, parameters=params)



class _RawModelInfer:
    """V2 gRPC ModelInfer with the BYTES tensor's contents joined to the serialised request once.

    tritonclient's `infer` copies a GeoTIFF three times on the way out (serialize_byte_tensor, the request
    message, its serialisation): for a 2304 x 2304 x 6 block that was a quarter of `cloudmask predict`'s CPU. Here
    the request message is built with tritonclient's own protobuf classes without the tensor contents, and the
    contents (each element as V2 BYTES: a 4-byte little-endian length, then the bytes) are appended as field 7 of
    the wire format, which is what the message would serialise to. The answer is tritonclient's InferResult, and
    errors are its InferenceServerException, as from `infer`."""

    METHOD = "/inference.GRPCInferenceService/ModelInfer"

    def __init__(self, target: str, options):
        import grpc
        from tritonclient.grpc import service_pb2

        self._grpc = grpc
        self._channel = grpc.insecure_channel(target, options=options)
        self._call = self._channel.unary_unary(self.METHOD, request_serializer=None,
                                               response_deserializer=service_pb2.ModelInferResponse.FromString)

    def close(self):
        self._channel.close()

    @staticmethod
    def request_bytes(model: str, input_name: str, elements, outputs, parameters, datatype: str = "BYTES") -> bytes:
        """The serialised ModelInferRequest: head, then the tensor's contents as field 7: a BYTES tensor's
        `elements` (each its 4-byte length, then its bytes), or `elements` an array of another datatype, its
        little-endian bytes as they lie."""
        import struct

        from tritonclient.grpc import service_pb2 as pb

        if datatype == "BYTES":
            shape = [len(elements)]
            parts = []
            for e in elements:
                parts += [struct.pack("<I", memoryview(e).nbytes), e]
        else:
            shape = list(elements.shape)
            parts = [memoryview(np.ascontiguousarray(elements)).cast("B")]
        head = pb.ModelInferRequest(model_name=model, inputs=[pb.ModelInferRequest.InferInputTensor(
            name=input_name, datatype=datatype, shape=shape)],
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in outputs])
        for k, v in (parameters or {}).items():
            head.parameters[k].string_param = str(v)
        size = sum(memoryview(p).nbytes for p in parts)
        return b"".join([head.SerializeToString(), wire.raw_contents_prefix(size), *parts])

    def __call__(self, model, input_name, elements, outputs, parameters, headers, timeout_s, datatype="BYTES"):
        from tritonclient.grpc import InferResult
        from tritonclient.utils import InferenceServerException

        body = self.request_bytes(model, input_name, elements, outputs, parameters, datatype)
        metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        try:
            return InferResult(self._call(body, metadata=metadata, timeout=timeout_s))
        except self._grpc.RpcError as e:  # as tritonclient.grpc's infer raises them
            raise InferenceServerException(msg=e.details(), status=str(e.code()),
                                           debug_details=e.debug_error_string()) from None
