"""fp16 / bf16 emulation of ONNX models (flownet2/onnx/precision.py), and the ops that stay safe under it."""
import io
import math
import struct
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from flownet2.errors import Flownet2Error
from flownet2.model.ops import FLOW_NORM_SCALE, channel_norm, warp
from flownet2.onnx.precision import emulate_onnx, round_array


def _run(model, **feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every rounding
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _export(fn, *args):
    class Module(torch.nn.Module):
        def forward(self, *xs):
            return fn(*xs)

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Module(), args, buffer, dynamo=False, opset_version=11,
                          input_names=[f"in{k}" for k in range(len(args))], output_names=["out"])
    return onnx.load_from_string(buffer.getvalue())


def _graph(nodes, inputs, initializers=(), opset=11):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _flow_300px():
    flow = np.zeros((1, 2, 4, 4), np.float32)
    flow[0, 0] = 300.0
    flow[0, 1] = -40.0
    return flow


def test_fp16_emulation_overflows_a_hand_built_channel_norm_of_a_300px_flow():
    # sqrt(u^2 + v^2) written plainly: u^2 = 90000 > 65504, the largest fp16.
    model = _graph([helper.make_node("Mul", ["x", "x"], ["sq"]),
                    helper.make_node("ReduceSum", ["sq"], ["sum"], axes=[1], keepdims=1),
                    helper.make_node("Sqrt", ["sum"], ["out"])], ["x"])
    flow = _flow_300px()
    exact = math.hypot(300.0, 40.0)
    np.testing.assert_allclose(_run(model, x=flow), exact, rtol=1e-6)  # fine in fp32
    assert np.isinf(_run(emulate_onnx(model, "fp16"), x=flow)).all()  # the emulation can fail
    assert np.isfinite(_run(emulate_onnx(model, "bf16"), x=flow)).all()  # bf16 has fp32's range


def test_scaled_channel_norm_stays_finite_under_fp16():
    model = _export(lambda x: channel_norm(x, FLOW_NORM_SCALE), torch.from_numpy(_flow_300px()))
    out = _run(emulate_onnx(model, "fp16"), in0=_flow_300px())
    # Each of the ~4 roundings on the way (scale, square, sum, root, unscale) is within 2^-11 relative.
    np.testing.assert_allclose(out, math.hypot(300.0, 40.0), rtol=5 * 2.0**-11)


def _tiny_add_model(weight):
    return _graph([helper.make_node("Add", ["x", "w"], ["out"])], ["x"],
                  [numpy_helper.from_array(weight, "w")])


def _awkward_values(n, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-9, 6, n)).astype(np.float32)
    return np.concatenate([x, np.float32([65504, 65519, 65520, 7e4, -7e4, 1e-8, 2049, 2051, 257, 0, -0.0])])


def test_fp16_emulation_rounds_exactly_like_numpy_float16():
    x, w = _awkward_values(5000, 1), _awkward_values(5000, 2)[::-1].copy()
    f16 = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731
    with np.errstate(over="ignore", invalid="ignore"):
        expect = f16(f16(x) + f16(w))  # inputs and weights rounded, added in fp32, result rounded
    out = _run(emulate_onnx(_tiny_add_model(w), "fp16"), x=x)
    np.testing.assert_array_equal(out, expect)  # bit for bit, inf (from 7e4) included


def _bf16_slow(v):
    """bf16 round-to-nearest-even of one float32, from its bits, one value at a time."""
    bits = struct.unpack("<I", struct.pack("<f", v))[0]
    if math.isnan(v):
        return v
    low, high = bits & 0xFFFF, bits >> 16
    if low > 0x8000 or (low == 0x8000 and high & 1):
        high += 1  # carries into the exponent as it should (up to inf)
    return struct.unpack("<f", struct.pack("<I", (high << 16) & 0xFFFFFFFF))[0]


def test_bf16_emulation_rounds_like_a_slow_reference():
    x, w = _awkward_values(3000, 3), _awkward_values(3000, 4)[::-1].copy()
    ties = np.float32([257, 259, -257, 1 + 2.0**-8, 1 + 3 * 2.0**-8, 3.3895314e38])  # exact halfway points
    x, w = np.concatenate([x, ties]), np.concatenate([w, np.zeros_like(ties)])
    slow = np.vectorize(_bf16_slow, otypes=[np.float32])
    expect = slow((slow(x) + slow(w)).astype(np.float32))
    np.testing.assert_array_equal(round_array(x, "bf16"), slow(x))
    model = emulate_onnx(_tiny_add_model(w), "bf16")
    assert model.opset_import[0].version >= 13  # ONNX's Cast takes bfloat16 from opset 13
    np.testing.assert_array_equal(_run(model, x=x), expect)


def test_emulation_refuses_unknown_kind():
    with pytest.raises(Flownet2Error, match="fp16, bf16"):
        emulate_onnx(_tiny_add_model(np.zeros(1, np.float32)), "int8")


# Bound for the warp below: flows are multiples of 1/4 below 512 px (exact in fp16), so the fractional
# weights and their products are exact; the image in [0, 1) is rounded once (<= 2^-12 absolute), each
# of the four weighted neighbours once (<= 2^-11 relative, summing to <= 2^-11), the sum once (<= 2^-12).
WARP_FP16_BOUND = 2.0**-12 + 2.0**-11 + 2.0**-12  # 9.8e-4


def _wide_warp_case():
    h, w = 8, 1024
    g = torch.Generator().manual_seed(7)
    xs = torch.arange(w, dtype=torch.float64)
    img = (0.5 + 0.45 * torch.sin(xs / 3.0 + torch.arange(h, dtype=torch.float64).view(h, 1)))  # steep: 0.15/px
    img = img.expand(1, 3, h, w).float().contiguous()
    flow = torch.randint(-4 * 500, 4 * 500, (1, 2, h, w), generator=g).float() / 4  # |u| <= 500 px
    flow[:, 1] /= 64  # rows: a few px, the image is 8 high
    return img, flow


def test_warp_under_fp16_matches_fp32_on_a_1024_wide_image():
    img, flow = _wide_warp_case()
    model = _export(warp, img, flow)
    ref = warp(img, flow).numpy()
    out = _run(emulate_onnx(model, "fp16"), in0=img.numpy(), in1=flow.numpy())
    assert np.abs(out - ref).max() <= WARP_FP16_BOUND


def test_warp_from_an_fp16_absolute_coordinate_would_fail_that_bound():
    # Resample2d's own formula with the sample point x + u held in fp16 (above 512 px it moves by up
    # to 0.25 px), rows not moved, everything else exact: the bound above is far exceeded.
    img, flow = _wide_warp_case()
    flow[:, 1] = 0
    ref = warp(img, flow).numpy()[0, 0]
    w = img.shape[-1]
    xf = (np.arange(w, dtype=np.float16) + flow[0, 0].numpy().astype(np.float16)).astype(np.float64)
    x0 = np.floor(xf)
    a = xf - x0
    left, right = np.clip(x0, 0, w - 1).astype(int), np.clip(x0 + 1, 0, w - 1).astype(int)
    rows = img[0, 0].numpy().astype(np.float64)
    old = (1 - a) * np.take_along_axis(rows, left, 1) + a * np.take_along_axis(rows, right, 1)
    assert np.abs(old - ref).max() > 20 * WARP_FP16_BOUND


def test_sensitive_nodes_names_the_square_that_overflows():
    from flownet2.onnx.precision import sensitive_nodes

    model = _graph([helper.make_node("Mul", ["x", "x"], ["sq"], name="square"),
                    helper.make_node("ReduceSum", ["sq"], ["sum"], name="sum", axes=[1], keepdims=1),
                    helper.make_node("Sqrt", ["sum"], ["out"], name="root")], ["x"])
    flow = _flow_300px()
    rows = sensitive_nodes(model, {"x": flow}, "fp16", top=3, chunk=2)
    # u^2 = 90000 overflows, v^2 = 1600 does not: half the square's values; the inf then spreads to all.
    assert rows[0] == ("square", "Mul", True, 0.5, 0.0)
    assert [(r[0], r[2], r[3]) for r in rows[1:]] == [("sum", False, 1.0), ("root", False, 1.0)]
