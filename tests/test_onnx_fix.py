"""fix_onnx's graph rewrites on hand-built graphs, checked against ONNX Runtime running the original graph
and against answers worked out by hand (numpy indexing)."""
import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from flownet2.commands import fix_onnx
from flownet2.cli import run_main
from flownet2.errors import Flownet2Error
from flownet2.model.provenance import KEY
from flownet2.onnx import fix as onnx_fix
from flownet2.onnx.atc_ops import OPS_FILE, load_supported_ops, unsupported_nodes
from flownet2.onnx.graph import constant_tensors, copy_model
from flownet2.onnx.int32 import int64_to_int32
from flownet2.onnx.slices import merge_slice_chains

I64_MAX, I64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def make_model(nodes, inputs, outputs, initializers=(), opset=11):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # what this ONNX Runtime reads
    model.metadata_props.add(key=KEY, value="stand-in:seed=7")
    return model


def out(name, rank):
    """A float graph output of known rank, sizes left symbolic (the checker wants a shape)."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"{name}{k}" for k in range(rank)])


def run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def ints(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(values, dtype), name)


def slice_chain(shape, chain, as_constants=False, dims=None):
    """Model x -> Slice -> Slice -> ... -> y; chain = [(starts, ends, axes, steps), ...]."""
    nodes, inits = [], []
    src = "x"
    for k, params in enumerate(chain):
        names = []
        for what, values in zip(("starts", "ends", "axes", "steps"), params):
            name = f"s{k}_{what}"
            if as_constants:
                nodes.append(helper.make_node("Constant", [], [name], value=ints(name, values)))
            else:
                inits.append(ints(name, values))
            names.append(name)
        dst = "y" if k == len(chain) - 1 else f"t{k}"
        nodes.append(helper.make_node("Slice", [src] + names, [dst], name=f"slice{k}"))
        src = dst
    dims = dims or list(shape)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    return make_model(nodes, [x], [out("y", len(dims))], inits)


def ops(model):
    return collections.Counter(n.op_type for n in model.graph.node)


# --------------------------------------------------------------------------- Slice -> Slice


def test_merged_chain_gives_the_hand_computed_window():
    x = np.arange(4 * 6, dtype=np.float32).reshape(4, 6)
    chain = [([1], [I64_MAX], [1], [1]),  # x[:, 1:]
             ([0], [10], [-1], [2]),  # then [:, ::2] (out-of-range end, negative axis)
             ([1], [3], [0], [1])]  # then [1:3]
    model = slice_chain(x.shape, chain)
    merged, count = merge_slice_chains(model)
    assert count == 2
    assert ops(merged) == {"Slice": 1}
    onnx.checker.check_model(merged, full_check=True)
    np.testing.assert_array_equal(run(merged, {"x": x})[0], x[1:3, 1::2])


def _random_slice(rng, rank, steps=(1, 1, 2, 3)):
    n_axes = int(rng.integers(1, rank + 1))
    axes = rng.choice(rank, n_axes, replace=False)
    axes = [int(a) - rank if rng.random() < 0.3 else int(a) for a in axes]
    bounds = [-12, -7, -6, -3, -1, 0, 1, 2, 3, 5, 6, 9, I64_MAX, I64_MIN]
    starts = [int(rng.choice(bounds)) for _ in axes]
    ends = [int(rng.choice(bounds)) for _ in axes]
    return starts, ends, axes, [int(rng.choice(steps)) for _ in axes]


def spec_slice(x, starts, ends, axes, steps):
    """Positive-step Slice as the ONNX operator text words it, element by element (slow reference)."""
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = x.shape[axis]
        start = min(max(start + dim if start < 0 else start, 0), dim)
        end = min(max(end + dim if end < 0 else end, 0), dim)
        picked = []
        i = start
        while i < end:
            picked.append(i)
            i += step
        x = np.take(x, np.array(picked, dtype=int), axis=axis)
    return x


def test_random_positive_step_chains_merge_fully_and_match_the_spec():
    rng = np.random.default_rng(0)
    shape = (5, 6, 7)
    x = rng.random(shape, dtype=np.float32)
    for case in range(80):
        chain = [_random_slice(rng, len(shape)) for _ in range(int(rng.integers(2, 5)))]
        model = slice_chain(shape, chain, as_constants=bool(case % 2))
        merged, count = merge_slice_chains(model)
        assert count == len(chain) - 1, chain
        assert ops(merged)["Slice"] == 1
        onnx.checker.check_model(merged, full_check=True)
        expected = x
        for params in chain:
            expected = spec_slice(expected, *params)
        got = run(merged, {"x": x})[0]
        assert got.shape == expected.shape, chain
        np.testing.assert_array_equal(got, expected, err_msg=str(chain))
        np.testing.assert_array_equal(got, run(model, {"x": x})[0], err_msg=str(chain))


def test_random_chains_with_negative_steps_keep_onnx_runtime_results():
    # Where negative steps meet on one axis nothing is merged (runtimes read INT64_MAX ends
    # differently there); on separate axes the parameters are copied as they are.
    rng = np.random.default_rng(1)
    shape = (5, 6, 7)
    x = rng.random(shape, dtype=np.float32)
    merges = 0
    for case in range(60):
        chain = [_random_slice(rng, len(shape), steps=(1, 2, -1, -2)) for _ in range(int(rng.integers(2, 4)))]
        model = slice_chain(shape, chain, as_constants=bool(case % 2))
        merged, count = merge_slice_chains(model)
        assert ops(merged)["Slice"] == len(chain) - count
        merges += count
        onnx.checker.check_model(merged, full_check=True)
        np.testing.assert_array_equal(run(merged, {"x": x})[0], run(model, {"x": x})[0], err_msg=str(chain))
    assert merges > 10  # the disjoint-axes cases did merge


def test_negative_steps_on_a_shared_axis_are_not_merged():
    model = slice_chain((6,), [([I64_MAX], [I64_MIN], [0], [-1]), ([1], [4], [0], [1])])
    merged, count = merge_slice_chains(model)
    assert count == 0 and ops(merged)["Slice"] == 2


def test_fan_out_rewires_every_consumer_and_keeps_a_parent_still_needed():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])
    outs = [out(n, 2) for n in ("a", "b", "c")]
    inits = [ints("s0", [1]), ints("e0", [4]), ints("ax0", [0]), ints("st", [1]),
             ints("s1", [2]), ints("e1", [6]), ints("ax1", [1]), ints("s2", [0]), ints("e2", [8]), ints("st2", [3])]
    nodes = [helper.make_node("Slice", ["x", "s0", "e0", "ax0", "st"], ["a"], name="rows"),
             helper.make_node("Slice", ["a", "s1", "e1", "ax1", "st"], ["b"], name="cols"),
             helper.make_node("Slice", ["a", "s2", "e2", "ax1", "st2"], ["c"], name="every_third")]
    model = make_model(nodes, [x], outs, inits)
    merged, count = merge_slice_chains(model)
    assert count == 2
    assert all(n.input[0] == "x" for n in merged.graph.node)  # "rows" stays: "a" is a graph output
    xv = np.arange(32, dtype=np.float32).reshape(4, 8)
    a, b, c = run(merged, {"x": xv})
    np.testing.assert_array_equal(b, xv[1:4, 2:6])
    np.testing.assert_array_equal(c, xv[1:4, 0:8:3])


def test_shared_axis_of_unknown_size_is_left_alone_but_disjoint_axes_merge():
    chain_same_axis = [([1], [I64_MAX], [0], [1]), ([0], [-1], [0], [1])]
    model = slice_chain(None, chain_same_axis, dims=["N", 6])
    merged, count = merge_slice_chains(model)
    assert count == 0 and ops(merged)["Slice"] == 2
    chain_disjoint = [([1], [I64_MAX], [0], [1]), ([0], [-1], [1], [1])]
    model = slice_chain(None, chain_disjoint, dims=["N", 6])
    merged, count = merge_slice_chains(model)
    assert count == 1 and ops(merged)["Slice"] == 1
    xv = np.arange(18, dtype=np.float32).reshape(3, 6)
    np.testing.assert_array_equal(run(merged, {"x": xv})[0], xv[1:, :-1])


def test_rewrites_leave_their_input_untouched_and_keep_metadata():
    model = slice_chain((4, 6), [([1], [3], [0], [1]), ([0], [2], [1], [1])])
    before = model.SerializeToString()
    for rewrite in (merge_slice_chains, int64_to_int32):
        rewritten, _ = rewrite(model)
        assert model.SerializeToString() == before
        assert {p.key: p.value for p in rewritten.metadata_props} == {KEY: "stand-in:seed=7"}


# --------------------------------------------------------------------------- int64 -> int32


def warp_like_model():
    """Index arithmetic like the exported warp: floor, clamp, cast, y*W+x, reshape, expand, gather."""
    img = helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 2, 3, 4])
    u = helper.make_tensor_value_info("u", TensorProto.FLOAT, [1, 3, 4])
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 3, 4])
    outs = [out("warped", 3), out("picked", 4)]
    inits = [numpy_helper.from_array(np.float32(0), "zero"), numpy_helper.from_array(np.float32(3), "xmax"),
             numpy_helper.from_array(np.float32(2), "ymax"), ints("width", 4),
             ints("flat_shape", [1, 1, 12]), ints("img_shape", [1, 2, 12]), ints("expand_shape", [1, 2, 12]),
             ints("channels", [1, 0]), ints("s", [1]), ints("e", [I64_MAX]), ints("ax", [3]), ints("st", [1])]
    nodes = [
        helper.make_node("Floor", ["u"], ["uf"]), helper.make_node("Floor", ["v"], ["vf"]),
        helper.make_node("Clip", ["uf", "zero", "xmax"], ["uc"]),
        helper.make_node("Clip", ["vf", "zero", "ymax"], ["vc"]),
        helper.make_node("Cast", ["uc"], ["xi"], to=TensorProto.INT64, name="cast_x"),
        helper.make_node("Cast", ["vc"], ["yi"], to=TensorProto.INT64, name="cast_y"),
        helper.make_node("Mul", ["yi", "width"], ["row"]),
        helper.make_node("Add", ["row", "xi"], ["idx"]),
        helper.make_node("Reshape", ["idx", "flat_shape"], ["idx_flat"]),
        helper.make_node("Expand", ["idx_flat", "expand_shape"], ["idx_all"]),
        helper.make_node("Reshape", ["img", "img_shape"], ["img_flat"]),
        helper.make_node("GatherElements", ["img_flat", "idx_all"], ["warped"], axis=2),
        helper.make_node("Gather", ["img", "channels"], ["swapped"], axis=1),
        helper.make_node("Slice", ["swapped", "s", "e", "ax", "st"], ["picked"]),
    ]
    return make_model(nodes, [img, u, v], outs, inits)


def initializer_types(model):
    return {t.name: t.data_type for t in model.graph.initializer}


def test_int64_index_arithmetic_becomes_int32_and_shapes_stay_int64():
    model = warp_like_model()
    fixed, count = int64_to_int32(model)
    onnx.checker.check_model(fixed, full_check=True)
    types = initializer_types(fixed)
    for name in ("width", "channels", "s", "e", "ax", "st"):
        assert types[name] == TensorProto.INT32, name
    for name in ("flat_shape", "img_shape", "expand_shape"):  # Reshape/Expand shapes must stay int64
        assert types[name] == TensorProto.INT64, name
    casts = {n.name: n.attribute[0].i for n in fixed.graph.node if n.op_type == "Cast"}
    assert casts == {"cast_x": TensorProto.INT32, "cast_y": TensorProto.INT32}
    assert count == 2 + 6
    e = {t.name: t for t in fixed.graph.initializer}["e"]
    assert numpy_helper.to_array(e).tolist() == [np.iinfo(np.int32).max]  # INT64_MAX end clamped

    rng = np.random.default_rng(1)
    img = rng.random((1, 2, 3, 4), dtype=np.float32)
    u = (rng.random((1, 3, 4)) * 8 - 2).astype(np.float32)
    v = (rng.random((1, 3, 4)) * 6 - 2).astype(np.float32)
    feeds = {"img": img, "u": u, "v": v}
    # hand-computed: each pixel picks img at (clamp(floor v), clamp(floor u)) in both channels
    xi = np.clip(np.floor(u), 0, 3).astype(int)[0]
    yi = np.clip(np.floor(v), 0, 2).astype(int)[0]
    expected = img[0][:, yi, xi].reshape(1, 2, 12)
    warped, picked = run(fixed, feeds)
    np.testing.assert_array_equal(warped, expected)
    np.testing.assert_array_equal(picked, img[:, ::-1, :, 1:])
    for a, b in zip(run(model, feeds), run(fixed, feeds)):
        np.testing.assert_array_equal(a, b)


def test_int64_stays_where_any_reader_needs_int64():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    outs = [out(n, 2) for n in ("g", "r", "z")]
    inits = [numpy_helper.from_array(np.array([2.0, 3.0], np.float32), "dims_f"), ints("zero", [0])]
    nodes = [
        # a cast whose result is both gather indices and a Reshape shape: the shape wins
        helper.make_node("Cast", ["dims_f"], ["dims"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["x", "dims"], ["r"]),
        helper.make_node("Gather", ["x", "zero"], ["g"], axis=0),
        helper.make_node("Gather", ["dims", "zero"], ["d0"], axis=0),
        # Shape's output is int64 by definition, so everything tied to it stays int64
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("ConstantOfShape", ["shp"], ["z"], value=numpy_helper.from_array(np.zeros(1, np.float32))),
    ]
    model = make_model(nodes, [x], outs, inits)
    fixed, count = int64_to_int32(model)
    assert count == 1  # only "zero": read as gather indices and nothing else
    assert initializer_types(fixed)["zero"] == TensorProto.INT32
    cast = next(n for n in fixed.graph.node if n.op_type == "Cast")
    assert cast.attribute[0].i == TensorProto.INT64
    onnx.checker.check_model(fixed, full_check=True)
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    for a, b in zip(run(model, {"x": xv}), run(fixed, {"x": xv})):
        np.testing.assert_array_equal(a, b)


def test_out_of_range_constant_in_arithmetic_is_not_clamped():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [5])
    i = helper.make_tensor_value_info("i", TensorProto.FLOAT, [2])
    y = out("y", 1)
    nodes = [helper.make_node("Cast", ["i"], ["ii"], to=TensorProto.INT64),
             helper.make_node("Add", ["ii", "big"], ["shifted"]),
             helper.make_node("Sub", ["shifted", "big"], ["back"]),
             helper.make_node("Gather", ["x", "back"], ["y"])]
    model = make_model(nodes, [x, i], [y], [ints("big", 2**40)])
    fixed, count = int64_to_int32(model)
    assert count == 0
    assert fixed.SerializeToString() == model.SerializeToString()


def test_int64_max_end_of_a_reversing_slice_stays_int64():
    # ONNX Runtime reads end=INT64_MAX with a negative step as "through index 0", the spec as
    # "nothing"; clamped to int32 the meaning would rest on each runtime's sentinel, so it stays int64.
    model = slice_chain((6,), [([I64_MAX], [I64_MAX], [0], [-1])])
    fixed, count = int64_to_int32(model)
    assert count == 0
    x = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(run(fixed, {"x": x})[0], run(model, {"x": x})[0])


# --------------------------------------------------------------------------- the ATC list and the CLI


def test_atc_list_holds_onnx_op_names_and_cites_cann():
    supported = load_supported_ops()
    assert {"Conv", "ConvTranspose", "Slice", "GatherElements", "Resize", "MatMul", "LeakyRelu"} <= supported
    known = {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain == ""}
    assert supported <= known, supported - known
    with open(OPS_FILE, encoding="utf-8") as f:
        assert "hiascend.com" in f.read()


def test_unsupported_nodes_are_named():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = out("y", 1)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="ok"), helper.make_node("Mish", ["r"], ["m"], name="mish1"),
             helper.make_node("Foo", ["m"], ["y"], name="custom", domain="com.example")]
    found = unsupported_nodes(make_model(nodes, [x], [y], opset=18), {"Relu"})
    assert found == {"Mish": ["mish1"], "com.example::Foo": ["custom"]}


def chain_and_cast_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])
    i = helper.make_tensor_value_info("i", TensorProto.FLOAT, [2])
    outs = [out("y", 2), out("g", 2)]
    inits = [ints("s0", [1]), ints("e0", [3]), ints("a0", [0]), ints("s1", [2]), ints("e1", [5]), ints("a1", [1])]
    nodes = [helper.make_node("Slice", ["x", "s0", "e0", "a0"], ["t"], name="rows"),
             helper.make_node("Slice", ["t", "s1", "e1", "a1"], ["y"], name="cols"),
             helper.make_node("Cast", ["i"], ["ii"], to=TensorProto.INT64, name="to_index"),
             helper.make_node("Gather", ["x", "ii"], ["g"], name="pick")]
    return make_model(nodes, [x, i], outs, inits)


def test_cli_reports_counts_checks_and_writes(tmp_path, capsys):
    src, dst = tmp_path / "m_sim.onnx", tmp_path / "out" / "m_sim_fix.onnx"
    onnx.save(chain_and_cast_model(), src)
    assert fix_onnx.main([str(src), str(dst), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "merge Slice->Slice chains: 1 changed" in out
    assert "int64 -> int32: 5 changed" in out  # 1 cast + 4 slice parameters left after the merge
    assert "nodes: 4 -> 3" in out
    assert "all 3 op types are on the list" in out
    assert "max |diff| = 0" in out
    fixed = onnx.load(dst)
    assert {p.key: p.value for p in fixed.metadata_props} == {KEY: "stand-in:seed=7"}
    xv = np.arange(24, dtype=np.float32).reshape(4, 6)
    y, g = run(fixed, {"x": xv, "i": np.array([3.0, 0.0], np.float32)})
    np.testing.assert_array_equal(y, xv[1:3, 2:5])
    np.testing.assert_array_equal(g, xv[[3, 0]])


def test_cli_strict_refuses_an_unlisted_op_and_writes_nothing(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = out("y", 1)
    src, dst = tmp_path / "mish.onnx", tmp_path / "mish_fix.onnx"
    onnx.save(make_model([helper.make_node("Mish", ["x"], ["y"], name="act")], [x], [y], opset=18), src)
    with pytest.raises(Flownet2Error, match="Mish"):
        fix_onnx.main([str(src), str(dst), "--strict"])
    assert not dst.exists()
    assert fix_onnx.main([str(src), str(dst)]) == 0  # without --strict: reported, still written
    assert "Mish (1 node): act" in capsys.readouterr().out
    assert dst.exists()


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    for path in (junk, tmp_path / "missing.onnx"):
        with pytest.raises(SystemExit) as e:
            run_main(fix_onnx.main, [str(path), str(tmp_path / "out.onnx")])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}") and err.count("\n") == 1
    assert not (tmp_path / "out.onnx").exists()


def test_cli_says_an_empty_or_foreign_file_is_not_an_onnx_model(tmp_path, capsys):
    empty, text = tmp_path / "empty.onnx", tmp_path / "notes.onnx"
    empty.write_bytes(b"")  # parses as an empty ModelProto: once blamed on the rewrite
    text.write_bytes(b"x1, x2 -> flow\n")
    for path in (empty, text):
        with pytest.raises(SystemExit) as e:
            run_main(fix_onnx.main, [str(path), str(tmp_path / "out.onnx")])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: the input is not an ONNX model"), err
        assert "rewrite" not in err and err.count("\n") == 1
    assert not (tmp_path / "out.onnx").exists()


def test_cli_output_that_is_a_folder_is_named_as_given(tmp_path, capsys):
    src, folder = tmp_path / "m_sim.onnx", tmp_path / "fixed"
    onnx.save(chain_and_cast_model(), src)
    folder.mkdir()
    with pytest.raises(SystemExit) as e:
        run_main(fix_onnx.main, [str(src), str(folder)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {folder}: is a folder; give the path of the .onnx file to write\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed", "m_sim.onnx"]  # no temporary left
    assert not any(folder.iterdir())


def _breaks_outputs(model):
    """A wrong 'rewrite': every Slice window moves by one, so the model stays valid but computes another thing."""
    model = copy_model(model)
    consts = constant_tensors(model.graph)
    for node in model.graph.node:
        if node.op_type == "Slice":
            for t in (consts[node.input[1]], consts[node.input[2]]):  # starts and ends
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + 1, t.name))
    return model, 1


def _changes_a_shape(model):
    """A wrong 'rewrite': the rows and columns Slice starts one later, so y shrinks from 2x3 to 1x2."""
    model = copy_model(model)
    consts = constant_tensors(model.graph)
    for node in model.graph.node:
        if node.op_type == "Slice":
            t = consts[node.input[1]]
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + 1, t.name))
    return model, 1


def _breaks_checker(model):
    """A wrong 'rewrite': a node reads a tensor nobody writes."""
    model = copy_model(model)
    model.graph.node[0].input[0] = "nowhere"
    return model, 1


@pytest.mark.parametrize("broken, words", [(_breaks_outputs, "changes the outputs by "),
                                           (_changes_a_shape, "changes the shape of output 0 from [2, 3] to [1, 2]"),
                                           (_breaks_checker, "fails onnx.checker")])
def test_each_rewrite_is_checked_and_a_failure_names_it(monkeypatch, tmp_path, broken, words):
    src = tmp_path / "m_sim.onnx"
    onnx.save(chain_and_cast_model(), src)
    monkeypatch.setattr(onnx_fix, "REWRITES", (onnx_fix.REWRITES[0], ("wrong one", broken)))
    with pytest.raises(Flownet2Error) as e:
        fix_onnx.main([str(src), str(tmp_path / "out.onnx")])
    assert str(e.value).startswith(f"{src}: rewrite 'wrong one' {words}"), e.value
    assert str(e.value).endswith("nothing written")
    assert not (tmp_path / "out.onnx").exists()
    # the library alone: the same check, no file involved
    check = onnx_fix.OutputCheck(chain_and_cast_model(), seed=3)
    if broken is _breaks_outputs:
        with pytest.raises(Flownet2Error, match="rewrite 'wrong one' changes the outputs"):
            onnx_fix.fix_model(chain_and_cast_model(), check_outputs=check)
        assert check.diffs["merge Slice->Slice chains"] == 0.0


def test_an_invalid_input_is_blamed_on_the_input_not_a_rewrite():
    model = chain_and_cast_model()
    model.graph.node[0].input[0] = "nowhere"
    with pytest.raises(Flownet2Error, match="^the input model fails onnx.checker"):
        onnx_fix.fix_model(model)
    # nothing to rewrite: the result is the input, still checked
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    untouched = make_model([helper.make_node("Relu", ["nowhere"], ["y"])], [x], [out("y", 1)])
    with pytest.raises(Flownet2Error, match="^the input model fails onnx.checker"):
        onnx_fix.fix_model(untouched)


def test_output_check_measures_the_difference_against_a_hand_made_change():
    # reference y = x[1:3, 2:5]; candidate adds 0.25 to every element of y: the difference is 0.25 exactly
    model = chain_and_cast_model()
    shifted = copy_model(model)
    shifted.graph.node[1].output[0] = "y_raw"
    shifted.graph.initializer.append(numpy_helper.from_array(np.float32(0.25), "quarter"))
    shifted.graph.node.append(helper.make_node("Add", ["y_raw", "quarter"], ["y"]))
    check = onnx_fix.OutputCheck(model, tolerance=0.3)
    assert check("shift", shifted) == pytest.approx(0.25, abs=1e-6) and check.worst == check.diffs["shift"]
    strict = onnx_fix.OutputCheck(model, tolerance=0.2)
    with pytest.raises(Flownet2Error, match=r"rewrite 'shift' changes the outputs by 0.25 \(> 0.2\)"):
        strict("shift", shifted)
