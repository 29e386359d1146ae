"""Run one V2 gRPC request in its own process and print the outcome as JSON.

tritonclient.grpc and kserve both register the V2 protos; they clash inside one process,
and the tests import kserve, so gRPC calls go through this script.
usage: python grpc_call.py HOST:PORT FILE [json-parameters]
"""

import json
import sys

import numpy as np
import tritonclient.grpc as tc


def main():
    target, path = sys.argv[1], sys.argv[2]
    params = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    c = tc.InferenceServerClient(target, channel_args=[("grpc.max_receive_message_length", -1),
                                                       ("grpc.max_send_message_length", -1)])
    inp = tc.InferInput("geotiff", [1], "BYTES")
    with open(path, "rb") as f:
        inp.set_data_from_numpy(np.array([f.read()], dtype=np.object_))
    try:
        r = c.infer("cloudmask", [inp], parameters=params or None, client_timeout=120)
    except tc.InferenceServerException as e:
        print(json.dumps({"status": str(e.status()), "message": e.message()}))
        return
    resp = r.get_response(as_json=True)
    mask = r.as_numpy("mask")
    np.save(path + ".grpc-mask.npy", mask)
    print(json.dumps({"status": "OK", "model_version": resp.get("model_version", ""),
                      "cloud_cover": float(r.as_numpy("cloud_cover")[0]),
                      "shadow_cover": float(r.as_numpy("shadow_cover")[0]),
                      "mask": path + ".grpc-mask.npy"}))


if __name__ == "__main__":
    main()
