"""Run one V2 gRPC request in its own process and print the outcome as JSON.

tritonclient.grpc and kserve both register the V2 protos; they clash inside one process,
and the tests import kserve, so gRPC calls go through this script.
usage: python grpc_call.py HOST:PORT FILE [json-parameters]
       python grpc_call.py HOST:PORT --batch CASES.json   ([{"path": ..., "params": {...}}, ...] -> a JSON list,
       in order, on one channel: a catalogue of bad requests costs one process, and the channel must survive it)
"""

import json
import sys

import numpy as np
import tritonclient.grpc as tc


def call(c, path, params, mask_path):
    inp = tc.InferInput("geotiff", [1], "BYTES")
    with open(path, "rb") as f:
        inp.set_data_from_numpy(np.array([f.read()], dtype=np.object_))
    try:
        r = c.infer("cloudmask", [inp], parameters=params or None, client_timeout=120)
    except tc.InferenceServerException as e:
        return {"status": str(e.status()), "message": e.message()}
    resp = r.get_response(as_json=True)
    np.save(mask_path, r.as_numpy("mask"))
    return {"status": "OK", "model_version": resp.get("model_version", ""),
            "cloud_cover": float(r.as_numpy("cloud_cover")[0]),
            "shadow_cover": float(r.as_numpy("shadow_cover")[0]), "mask": mask_path}


def main():
    target = sys.argv[1]
    c = tc.InferenceServerClient(target, channel_args=[("grpc.max_receive_message_length", -1),
                                                       ("grpc.max_send_message_length", -1)])
    if sys.argv[2] == "--batch":
        with open(sys.argv[3]) as f:
            cases = json.load(f)
        print(json.dumps([call(c, k["path"], k.get("params"), f"{k['path']}.{i}.grpc-mask.npy")
                          for i, k in enumerate(cases)]))
        return
    path = sys.argv[2]
    params = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    print(json.dumps(call(c, path, params, path + ".grpc-mask.npy")))


if __name__ == "__main__":
    main()
