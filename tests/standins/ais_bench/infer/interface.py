"""Stand-in for `ais_bench.infer.interface` (tests only; put tests/standins on PYTHONPATH).

InferSession takes the real constructor's arguments (device_id, model_path, acl_json_path, debug,
loop), insists on a stand-in .om as written by tests/standins/atc, and runs the ONNX model that .om
names on ONNX Runtime's CPU provider, so the outputs are the model's real outputs. As the real API:
get_inputs() gives descriptions with name, shape, datatype, size and realsize; infer(feeds,
mode="static") takes one numpy array per input, each exactly the compiled shape and size, and returns
a list of numpy arrays. Every call is appended to CALLS, so tests can check what was asked for.
"""
import json

import numpy as np

CALLS = []
MODES = ("static", "dymbatch", "dymhw", "dymdims", "dymshape")


class _Dtype:
    """aclruntime's data type enum prints as 'dtype.float32'."""

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return f"dtype.{self.name}"


class _TensorDesc:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.datatype = name, list(shape), _Dtype(np.dtype(dtype).name)
        self.size = self.realsize = int(np.prod(shape)) * np.dtype(dtype).itemsize


class InferSession:
    def __init__(self, device_id: int, model_path: str, acl_json_path: str = None, debug: bool = False,
                 loop: int = 1):
        CALLS.append(("InferSession", {"device_id": device_id, "model_path": model_path}))
        if not isinstance(device_id, int) or not 0 <= device_id <= 255:
            raise RuntimeError(f"device_id {device_id!r}: an int in [0, 255] is required")
        if not str(model_path).endswith(".om"):
            raise RuntimeError(f"{model_path}: the interface loads .om models only")
        with open(model_path) as f:  # the real one fails in aclruntime on a file that is no .om
            om = json.load(f)
        if om.get("stand_in_om") != 1:
            raise RuntimeError(f"{model_path}: not a stand-in .om")
        import onnxruntime as ort

        self.device_id, self.model_path, self.loop = device_id, model_path, loop
        self._ort = ort.InferenceSession(om["onnx"], providers=["CPUExecutionProvider"])
        types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int32)": np.int32}
        self._inputs = [_TensorDesc(i.name, om["input_shape"][i.name], types[i.type])
                        for i in self._ort.get_inputs()]
        self._outputs = [_TensorDesc(o.name, o.shape, types[o.type]) for o in self._ort.get_outputs()]

    def get_inputs(self):
        CALLS.append(("get_inputs", {}))
        return self._inputs

    def get_outputs(self):
        return self._outputs

    def infer(self, feeds, mode="static", custom_sizes=100000):
        CALLS.append(("infer", {"shapes": [tuple(np.shape(f)) for f in feeds], "mode": mode}))
        if mode not in MODES:
            raise RuntimeError(f"mode {mode!r} is not one of {MODES}")
        if len(feeds) != len(self._inputs):
            raise RuntimeError(f"{len(feeds)} feeds for a model with {len(self._inputs)} inputs")
        for feed, desc in zip(feeds, self._inputs):
            if type(feed) is not np.ndarray:
                raise RuntimeError(f"type:{type(feed)} invalid")
            if feed.nbytes != desc.realsize:  # a static .om takes exactly its compiled size
                raise RuntimeError(f"input {desc.name}: {feed.nbytes} bytes, the model takes {desc.realsize}")
        arrays = [np.ascontiguousarray(f).view(np.dtype(d.datatype.name)).reshape(d.shape)
                  for f, d in zip(feeds, self._inputs)]
        return self._ort.run(None, {d.name: a for d, a in zip(self._inputs, arrays)})

    def free_resource(self):
        CALLS.append(("free_resource", {}))
