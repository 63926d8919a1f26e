"""Stand-in for CANN's `atc` (tests only): `tests/standins/atc` runs it, or `python standin_atc.py ...`.

Accepts what the real ATC accepts (gflags syntax: --name=value, --name value, -name=value; every flag
of ATC's flag table in CANN 6.x and 8.x; an unknown flag is an error, as in gflags), checks the values
the real tool checks before compiling (framework, input format, log level, precision modes, soc name,
that every file argument exists, input names and static dims against the ONNX model), and writes
NAME.om: a JSON note naming the ONNX file, the shapes and every flag it received, which the stand-in
ais_bench runs (so its outputs are real). It only converts ONNX (--framework=5, --mode=0).
"""
import json
import os
import re
import sys

import onnx

# ATC's flags (GraphEngine's atc main: the CANN 6.x table plus the flags CANN 8.x added).
FLAGS = {
    "model", "output", "framework", "weight", "input_shape", "input_hint_shape", "input_shape_range", "h",
    "help", "cal_conf", "insert_op_conf", "op_name_map", "target", "om", "json", "mode", "out_nodes",
    "op_precision_mode", "allow_hf32", "precision_mode", "precision_mode_v2", "modify_mixlist", "keep_dtype",
    "input_format", "check_report", "input_fp16_nodes", "is_output_adjust_hw_layout",
    "is_input_adjust_hw_layout", "output_type", "op_select_implmode", "optypelist_for_implmode", "singleop",
    "disable_reuse_memory", "auto_tune_mode", "soc_version", "virtual_type", "core_type", "aicore_num",
    "buffer_optimize", "fusion_switch_file", "compression_optimize_conf", "customize_dtypes",
    "op_debug_config", "save_original_model", "dynamic_batch_size", "dynamic_image_size", "dynamic_dims",
    "enable_small_channel", "enable_compress_weight", "enable_attr_compression", "compress_weight_conf",
    "sparsity", "enable_single_stream", "ac_parallel_enable", "tiling_schedule_optimize", "log", "dump_mode",
    "op_debug_level", "enable_scope_fusion_passes", "debug_dir", "status_check", "op_compiler_cache_dir",
    "op_compiler_cache_mode", "mdl_bank_path", "op_bank_path", "display_model_info", "device_id",
    "shape_generalized_build_mode", "atomic_clean_policy", "external_weight", "deterministic",
    "deterministic_level", "host_env_os", "host_env_cpu", "cluster_config", "quant_dumpable", "is_weight_clip",
    "oo_level",
}
BOOL_FLAGS = {"h", "help"}
# Flags whose value names a file the real tool opens (it refuses a missing one before compiling).
FILE_FLAGS = ("model", "weight", "keep_dtype", "modify_mixlist", "insert_op_conf", "fusion_switch_file",
              "op_precision_mode", "op_name_map", "compress_weight_conf", "cal_conf", "customize_dtypes",
              "compression_optimize_conf")
CHOICES = {
    "log": ("debug", "info", "warning", "error", "null"),
    "input_format": ("NCHW", "ND", "NCDHW"),  # ONNX models
    "precision_mode": ("force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_mix_precision",
                       "allow_fp32_to_fp16", "must_keep_origin_dtype", "allow_mix_precision_fp16",
                       "allow_mix_precision_bf16", "allow_fp32_to_bf16"),
    "precision_mode_v2": ("fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16",
                          "cube_hif8", "mixed_hif8"),
    "op_select_implmode": ("high_precision", "high_performance", "high_precision_for_all",
                           "high_performance_for_all"),
}
# Chip names CANN ships a platform config for (npu-smi's name with "Ascend" in front; the 910_93 series
# as Ascend910_<NPU name>).
SOC_NAMES = re.compile(r"Ascend(310|310P[1-7]|310P3vir0[1248]|310B[1-4]|910|910A|910B|910ProA|910ProB|"
                       r"910PremiumA|910B[1-4]|910B2C|910B4-1|910_9[0-9]{3}|950\w*)")


def fail(message):
    print(f"ATC run failed (stand-in): {message}", file=sys.stderr)
    sys.exit(1)


def parse(argv):
    """gflags: --name=value, --name value, -name=value, -name value; booleans take no value."""
    args, i = {}, 0
    while i < len(argv):
        m = re.fullmatch(r"--?(\w+)(?:=(.*))?", argv[i], re.S)
        if not m:
            fail(f"argument {argv[i]!r} is not a flag")
        name, value = m[1], m[2]
        if name not in FLAGS:
            fail(f"ERROR: unknown command line flag '{name}'")
        if value is None and name not in BOOL_FLAGS:
            if i + 1 >= len(argv):
                fail(f"ERROR: flag '{name}' is missing its argument")
            i += 1
            value = argv[i]
        args[name] = value if value is not None else "true"
        i += 1
    return args


def check_values(args):
    for key in ("model", "output", "framework", "soc_version"):
        if not args.get(key):
            fail(f"--{key} is required")
    if args["framework"] != "5":
        fail(f"--framework={args['framework']}: the stand-in converts only ONNX (5)")
    if args.get("mode", "0") != "0":
        fail(f"--mode={args['mode']}: the stand-in only generates offline models (0)")
    for key, allowed in CHOICES.items():
        if key in args and args[key] not in allowed:
            fail(f"--{key}={args[key]} is not one of {', '.join(allowed)}")
    if not SOC_NAMES.fullmatch(args["soc_version"]):
        fail(f"--soc_version={args['soc_version']} is not an Ascend chip name")
    for key in FILE_FLAGS:
        if key in args and not os.path.isfile(args[key]):
            fail(f"--{key}={args[key]}: file not found")


def check_shapes(args):
    """Input names must be the model's; a static dim of the model must be given as it is."""
    model = onnx.load(args["model"], load_external_data=False)
    declared = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    shapes = dict(declared)
    for part in filter(None, args.get("input_shape", "").split(";")):
        name, _, dims = part.rpartition(":")
        if name not in declared:
            fail(f"--input_shape names {name!r}, which is not an input of the model ({', '.join(declared)})")
        shapes[name] = [int(d) for d in dims.split(",")]
        if len(shapes[name]) != len(declared[name]) or any(
                d and d != s for d, s in zip(declared[name], shapes[name])):
            fail(f"--input_shape {name}:{dims} does not match the model's input {name} {declared[name]}")
    return shapes


def main(argv):
    args = parse(argv)
    if "h" in args or "help" in args:
        print("usage: atc <args> (stand-in)")
        return
    check_values(args)
    shapes = check_shapes(args)
    om = args["output"] + ".om"
    with open(om, "w") as f:
        json.dump({"stand_in_om": 1, "onnx": os.path.abspath(args["model"]), "input_shape": shapes,
                   "soc_version": args["soc_version"], "precision_mode": args.get("precision_mode"),
                   "flags": args, "argv": argv}, f)
    print(f"ATC run success (stand-in): wrote {om}")


if __name__ == "__main__":
    main(sys.argv[1:])
