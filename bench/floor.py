"""The latency floor of the design: what two Python gRPC hops cost before any model runs (part of `make bench`).

The service is two ModelServers: client -> transformer -> predictor and back. Even with nothing to compute, a chip
request pays for moving its bytes through both hops. This module starts two bare gRPC servers as their own
processes, in the same shape: the "transformer" echo forwards a message of the hop's size to the "predictor" echo
and answers with a message of the service's response size; no protobuf parsing, no kserve, no numpy (generic
handlers on raw bytes). bench/run.py times a call through them beside the real paths, in the same rounds, and adds
the GeoTIFF decode of the same chip (cloudmask.raster.decode, measured in process): the floor. It prints the
end-to-end overhead over the in-process model call as a multiple of that floor (issue 13's target: <= 2).

Run as a server (what bench/run.py does): python -m bench.floor PORT RESPONSE_BYTES [FORWARD_TO FORWARD_BYTES]
"""

from __future__ import annotations

import subprocess
import sys
import time

METHOD = "/inference.GRPCInferenceService/ModelInfer"
OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def serve(port: int, response_bytes: int, forward_to: str | None = None, forward_bytes: int = 0) -> None:
    """A gRPC server answering METHOD with `response_bytes` bytes, after sending `forward_bytes` to `forward_to`
    (the next hop) and waiting for its answer when given. grpc.aio, as kserve's ModelServer."""
    import asyncio

    import grpc

    async def main():
        answer = bytes(response_bytes)
        hop = bytes(forward_bytes)
        channel = grpc.aio.insecure_channel(forward_to, options=OPTIONS) if forward_to else None
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None) if channel else None

        async def handler(request: bytes, context):
            if call is not None:
                await call(hop)
            return answer

        server = grpc.aio.server(options=OPTIONS)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService",
            {"ModelInfer": grpc.unary_unary_rpc_method_handler(handler, request_deserializer=None,
                                                                response_serializer=None)})])
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


class EchoChain:
    """Two echo servers (transformer-shaped, predictor-shaped) as child processes; call(request) goes through both."""

    def __init__(self, response_bytes: int, hop_request_bytes: int, hop_response_bytes: int):
        import grpc

        from cloudmask.supervisor import free_port

        p_port, t_port = free_port(), free_port()
        py = sys.executable
        self.procs = [subprocess.Popen([py, "-m", "bench.floor", str(p_port), str(hop_response_bytes)],
                                       stdout=subprocess.PIPE, text=True)]
        self.procs.append(subprocess.Popen([py, "-m", "bench.floor", str(t_port), str(response_bytes),
                                            f"127.0.0.1:{p_port}", str(hop_request_bytes)],
                                           stdout=subprocess.PIPE, text=True))
        for p in self.procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("an echo server did not start")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{t_port}", options=OPTIONS)
        self._call = self.channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        deadline = time.monotonic() + 30
        while True:  # the channel connects lazily: one call that succeeds before timing anything
            try:
                self._call(b"", timeout=5)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __call__(self, request: bytes) -> bytes:
        return self._call(request, timeout=60)

    def close(self) -> None:
        self.channel.close()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=30)


if __name__ == "__main__":
    a = sys.argv[1:]
    serve(int(a[0]), int(a[1]), a[2] if len(a) > 2 else None, int(a[3]) if len(a) > 3 else 0)
