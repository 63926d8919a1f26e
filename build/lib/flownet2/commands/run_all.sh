#!/usr/bin/env bash
# FlowNet2 on a benchmark (MPI-Sintel, KITTI 2015/2012, HD1K, Middlebury, FlyingChairs), the Ascend
# guide's whole chain in one command:
#   preprocess -> export -> onnxsim -> fix_onnx -> (atc + ais_bench | ONNX Runtime runner)
#   -> postprocess (EPE) -> performance run
#
#   bash scripts/run_all.sh          # nothing needed: synthetic Sintel + seeded STAND-IN weights
#   bash scripts/run_all.sh --dataset MPI-Sintel/training --checkpoint FlowNet2_checkpoint.pth.tar
#   bash scripts/run_all.sh --dataset data_scene_flow --checkpoint FlowNet2_checkpoint.pth.tar   # KITTI 2015
#
# Flags:
#   --dataset DIR        a benchmark folder in its official layout, recognised (default: a small synthetic
#                        one made in the work folder; see --synthetic)
#   --dataset-type T     sintel | kitti2015 | kitti2012 | hd1k | middlebury | chairs (default: recognised)
#   --size HxW           model size (default per dataset: KITTI 384x1280; else the largest frame, to /64)
#   --size-mode M        pad | resize (default: resize for KITTI, pad for the others)
#   --split-file FILE    FlyingChairs: FlyingChairs_train_val.txt (its validation pairs)
#   --synthetic LAYOUT   layout of the synthetic set made without --dataset (default sintel)
#   --pass clean|final   Sintel: default clean
#   --checkpoint FILE    FlowNet2_checkpoint.pth.tar (default: stand-in weights, seed 0, flagged loudly), or
#                        a smaller member's (FlowNet2-C, -S, -SD, -CS, -CSS: its keys say which)
#   --arch MEMBER        flownet2 | c | s | sd | cs | css: the member expected of --checkpoint, or the member
#                        of the stand-in weights (default: the checkpoint's own; flownet2 for stand-ins)
#   --batch-size N       default 1; used by every stage
#   --soc NAME           e.g. Ascend310P3 (default: read from npu-smi by scripts/atc.sh)
#   --backend B          auto (default: ascend when atc and ais_bench are installed) | ascend | onnxruntime
#                        | openvino (the fixed ONNX model on OpenVINO, CPU; see --precision)
#                        | torch (PyTorch straight from the checkpoint, on a CUDA GPU when present;
#                          skips export/onnxsim/fix_onnx; see --precision, --torch-mode)
#   --precision P        torch backend: fp16 | bf16 | tf32 | fp32 (default: fp16 on CUDA, fp32 on a CPU;
#                        bf16 on a CPU needs AVX512_BF16 or AMX); openvino: fp32 (default) | bf16
#   --torch-mode M       torch backend: graphs | compile | eager (default: graphs on CUDA, eager on a CPU)
#   --workdir DIR        default ./flownet2_work
#   --height H --width W size of the synthetic frames (default 256x448; synthetic data only)
#   --correlation C      matmul|slices, passed to the exporter (default: slices, the exporter's
#                        --ascend-compat form that the published 310P graph proved, on the ascend backend;
#                        matmul, faster on ONNX Runtime, elsewhere)
#   --loop N             runs of the performance stage (default 5)
#   --emulate fp16|bf16  also run the ONNX model with every tensor rounded to fp16/bf16 (ONNX Runtime)
#                        and print its EPE beside the fp32 one
#   --force              redo every stage (default: skip a stage when its command, and the content of
#                        everything it reads and wrote, are the same as last time)
# Multi-word flags take either separator (--batch-size or --batch_size; --bs too).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"  # the folder that holds the flownet2 package
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
ARGS=("$@")

die() { echo "run_all.sh: error: $*" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

dataset="" dataset_type="" size="" size_mode="" split_file="" synthetic="sintel" pass="clean" checkpoint="" bs=1 soc="" backend="auto" work="flownet2_work"
height="" width="" correlation="" loop=5 force=0 precision="" torch_mode="" emulate="" arch=""
while [ $# -gt 0 ]; do
  # one spelling inside: --batch_size and --bs are --batch-size, --torch_mode is --torch-mode, ...
  flag="$1"; [[ "$flag" != --* ]] || flag="${flag//_/-}"; [ "$flag" != --bs ] || flag=--batch-size
  case "$flag" in
    --dataset|--dataset-type|--size|--size-mode|--split-file|--synthetic|--pass|--checkpoint|--batch-size|--soc|--backend|--workdir|--height|--width|--correlation|--loop|--precision|--torch-mode|--emulate|--arch)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$flag" in
        --dataset) dataset="$2" ;; --dataset-type) dataset_type="$2" ;; --size) size="$2" ;;
        --size-mode) size_mode="$2" ;; --split-file) split_file="$2" ;; --synthetic) synthetic="$2" ;;
        --pass) pass="$2" ;; --checkpoint) checkpoint="$2" ;;
        --batch-size) bs="$2" ;; --soc) soc="$2" ;; --backend) backend="$2" ;; --workdir) work="$2" ;;
        --height) height="$2" ;; --width) width="$2" ;; --correlation) correlation="$2" ;; --loop) loop="$2" ;;
        --precision) precision="$2" ;; --torch-mode) torch_mode="$2" ;; --emulate) emulate="$2" ;;
        --arch) arch="$2" ;;
      esac
      shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
for v in bs loop ${height:+height} ${width:+width}; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--${v/bs/batch-size} must be a positive integer, got '${!v}'"
done
case "$pass" in clean|final) ;; *) die "--pass must be clean or final, got '$pass'" ;; esac
case "$synthetic" in sintel|kitti2015|kitti2012|hd1k|middlebury|chairs) ;;
  *) die "--synthetic must be sintel, kitti2015, kitti2012, hd1k, middlebury or chairs, got '$synthetic'" ;; esac
[ -z "$split_file" ] || [ -f "$split_file" ] || die "$split_file: split file not found"
[ -z "$split_file" ] || split_file="$(cd "$(dirname "$split_file")" && pwd)/$(basename "$split_file")"
case "$backend" in auto|ascend|onnxruntime|openvino|torch) ;; *) die "--backend must be auto, ascend, onnxruntime, openvino or torch" ;; esac
case "$emulate" in ""|fp16|bf16) ;; *) die "--emulate must be fp16 or bf16, got '$emulate'" ;; esac
[ -z "$emulate" ] || [ "$backend" != torch ] || die "--emulate rounds an ONNX model; the torch backend has --precision"
[ -z "$checkpoint" ] || [ -f "$checkpoint" ] || die "$checkpoint: checkpoint file not found"
if [ -n "$dataset" ]; then
  [ -d "$dataset" ] || die "$dataset: dataset folder not found"
  [ -z "$height$width" ] || die "--height/--width size the synthetic data only; a dataset's size comes from its frames"
  dataset="$(cd "$dataset" && pwd)"
fi
[ -z "$checkpoint" ] || checkpoint="$(cd "$(dirname "$checkpoint")" && pwd)/$(basename "$checkpoint")"
# Every tool the chosen backend needs, before the first stage (not a minute and gigabytes later).
requested="$backend"
backend="$("$PYTHON" -m flownet2.stages tools "$backend" ${emulate:+--emulate})" || exit 2
[ "$requested" != auto ] || echo "backend: $backend (auto: ascend needs atc and the ais_bench package)"

mkdir -p "$work"
work="$(cd "$work" && pwd)"

STAND_IN=""
if [ -z "$checkpoint" ]; then
  STAND_IN="$("$PYTHON" -m flownet2.stages banner)"
  echo "$STAND_IN"
  echo "    (no --checkpoint: seeded random weights; pass --checkpoint FlowNet2_checkpoint.pth.tar for real numbers)"
fi

# --------------------------------------------------------------------------- stage machinery
STAMPS="$work/.stamps" LOGS="$work/logs"
mkdir -p "$STAMPS" "$LOGS"
n_stage=0
T_START="$(date +%s.%N)"
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# stage NAME [--in PATH...] [--out PATH...] [--stale PATH...] -- CMD...: banner; skip when CMD and the
# content of every input and output are as the stamp recorded (flownet2.stages); else remove the STALE
# paths, run CMD logging to $LOGS/NAME.log, time it, record the stamp.
stage() {
  local name="$1"; shift
  local inputs=() outputs=() stale=() list=""
  while [ "$1" != -- ]; do
    case "$1" in --in|--out|--stale) list="$1" ;;
      *) case "$list" in --in) inputs+=("$1") ;; --out) outputs+=("$1") ;; --stale) stale+=("$1") ;; esac ;;
    esac
    shift
  done
  shift
  local stamp="$STAMPS/$name" log="$LOGS/$name.log" cmdline t0 p reason status=0
  local io=(--in "${inputs[@]}" --out "${outputs[@]}" -- "$@")
  cmdline="$(printf '%q ' "$@")"
  n_stage=$((n_stage + 1))
  echo
  echo "==> [$n_stage] $name"
  if [ "$force" = 0 ]; then
    if reason="$("$PYTHON" -m flownet2.stages check "$stamp" "${io[@]}")"; then
      echo "    up to date, skipped (--force redoes it); log: $log"
      return 0
    fi
    echo "    runs: $reason"
  fi
  rm -f "$stamp"
  for p in "${stale[@]}"; do rm -rf "$p"; done
  echo "+ $cmdline"
  t0="$(date +%s.%N)"
  if [[ " $QUIET_STAGES " == *" $name "* ]]; then
    "$@" > "$log" 2>&1 || { status=$?; tail -n 20 "$log"; }
  else
    "$@" 2>&1 | tee "$log" || status=$?
  fi
  if [ "$status" != 0 ]; then
    echo >&2
    echo "!! stage '$name' failed (log: $log). Rerun that stage with:" >&2
    echo "   cd $(printf '%q' "$PWD") && PYTHONPATH=$(printf '%q' "$PYTHONPATH") $cmdline" >&2
    echo "   or the whole chain (finished stages are skipped): bash $(printf '%q' "${BASH_SOURCE[0]}") $(printf '%q ' "${ARGS[@]}")" >&2
    exit 1
  fi
  "$PYTHON" -m flownet2.stages record "$stamp" "${io[@]}"
  echo "<== $name done in $(elapsed "$t0") s"
}

# Stages whose console output is too wide to read (onnxsim's op table): log only, tail on failure.
QUIET_STAGES="onnxsim"

# --------------------------------------------------------------------------- the chain
if [ -z "$dataset" ]; then
  height="${height:-256}" width="${width:-448}"
  stage synthetic --out "$work/synthetic" -- \
    "$PYTHON" -m flownet2.data.synthetic --layout "$synthetic" --out "$work/synthetic" --scenes 2 --pairs 3 \
    --height "$height" --width "$width" --seed 0
  dataset="$work/synthetic"
  [ "$synthetic" != chairs ] || split_file="${split_file:-$work/synthetic/FlyingChairs_train_val.txt}"
fi

prep="$work/prep_bs$bs"
dataset_args=(${dataset_type:+--dataset-type "$dataset_type"} ${size:+--size "$size"}
              ${size_mode:+--size-mode "$size_mode"} ${split_file:+--split-file "$split_file"})
stage preprocess --in "$dataset" ${split_file:+"$split_file"} --out "$prep/manifest.json" "$prep/gt" "$prep/mask" "$prep/image1" "$prep/image2" -- \
  "$PYTHON" -m flownet2.commands.preprocess --dataset "$dataset" --output "$prep" --batch_size "$bs" --pass "$pass" \
  "${dataset_args[@]}"

read -r model_h model_w < <("$PYTHON" -m flownet2.stages model-size "$prep/manifest.json") \
  || die "$prep/manifest.json: no model_size"

if [ "$backend" = torch ]; then
  # PyTorch runs the checkpoint itself: no ONNX stages. The runner reads the model from --model.
  model="${checkpoint:-stand-in:${arch:+$arch:}0}"
  backend_args=(--backend torch --model_size "$model_h,$model_w" ${precision:+--precision "$precision"}
                ${torch_mode:+--torch_mode "$torch_mode"})
  post_model=()  # the weights label travels in the runner's summary
else
  onnx="$work/flownet2_bs$bs.onnx"
  weights=(--init random --seed 0)
  [ -z "$checkpoint" ] || weights=(--input_path "$checkpoint")
  # Unless told: on Ascend the form the published 310P graph proved ATC takes, elsewhere the faster one.
  if [ -n "$correlation" ]; then form=(--correlation "$correlation")
  elif [ "$backend" = ascend ]; then form=(--ascend-compat)
  else form=(--correlation matmul)
  fi
  stage export --in "$checkpoint" --out "$onnx" -- \
    "$PYTHON" -m flownet2.commands.pth2onnx --batch_size "$bs" "${weights[@]}" --out_path "$onnx" \
    --height "$model_h" --width "$model_w" "${form[@]}" ${arch:+--arch "$arch"}

  sim="$work/flownet2_bs${bs}_sim.onnx"
  # onnxsim appends to an existing <out>.data side file, so the old one goes first
  stage onnxsim --in "$onnx" --out "$sim" "$sim.data" --stale "$sim" "$sim.data" -- \
    "$PYTHON" -m onnxsim "$onnx" "$sim"

  fix="$work/flownet2_bs${bs}_sim_fix.onnx"
  stage fix_onnx --in "$sim" "$sim.data" --out "$fix" -- "$PYTHON" -m flownet2.commands.fix_onnx "$sim" "$fix"

  model="$fix"
  if [ "$backend" = ascend ]; then
    model="$work/flownet2_bs$bs.om"
    stage atc --in "$fix" --out "$model" "$model.weights" -- \
      bash "$REPO/flownet2/commands/atc.sh" --model "$fix" --bs "$bs" --output "$work/flownet2_bs$bs" ${soc:+--soc "$soc"}
  fi
  backend_args=()
  [ "$backend" != openvino ] || backend_args=(--backend openvino ${precision:+--precision "$precision"})
  post_model=(--model "$model")
fi

# A .om goes through `python -m ais_bench` (flownet2.infer hands it over with the same arguments).
name="${backend}_bs$bs"
result="$work/result"
# infer NAME [FLAGS...]: the model on the batch files into result/NAME, then its EPE into report/NAME
# (the report has its own folder: the prediction folder stays as the runner left it).
infer_and_score() {
  local run="$1"; shift
  stage "inference${run#$name}" --in "$model" "$model.weights" "$prep/manifest.json" "$prep/image1" "$prep/image2" \
    --out "$result/$run" "$result/${run}_summary.json" --stale "$result/$run" "$result/${run}_summary.json" -- \
    "$PYTHON" -m flownet2.infer --model "$model" --input "$prep/image1,$prep/image2" --output "$result" \
    --output_dirname "$run" --outfmt BIN --batchsize "$bs" "${backend_args[@]}" "$@"
  stage "postprocess${run#$name}" --in "$prep/manifest.json" "$prep/gt" "$prep/mask" "$result/$run" "$result/${run}_summary.json" \
    "$dataset" "$model" "$model.weights" \
    --out "$work/report/$run" -- \
    "$PYTHON" -m flownet2.commands.postprocess --gt_path "$prep/gt" --output_path "$result/$run" \
    --batch_size "$bs" --report "$work/report/$run" --vis "$work/report/$run/vis" --vis-count 3 "${post_model[@]}"
}
infer_and_score "$name"
if [ -n "$emulate" ]; then  # the same ONNX model on ONNX Runtime, every tensor rounded to $emulate
  model="$fix" backend_args=() post_model=(--model "$fix")
  infer_and_score "${name}_emulate_$emulate" --emulate "$emulate"
  model="$work/flownet2_bs$bs.om"; [ "$backend" = ascend ] || model="$fix"
fi

stage performance --in "$model" --out "$work/perf/${name}_summary.json" -- \
  "$PYTHON" -m flownet2.infer --model "$model" --loop "$loop" --batchsize "$bs" \
  --output "$work/perf" --output_dirname "$name" "${backend_args[@]}"

echo
echo "=== done in $(elapsed "$T_START") s ($backend backend, batch $bs, work folder $work)"
[ -z "$STAND_IN" ] || echo "$STAND_IN"
sed -n '/Average EPE/,$p' "$LOGS/postprocess.log"  # the EPE table (also when that stage was skipped)
echo "pictures of the first 3 pairs (frame | predicted | ground truth | error): $work/report/$name/vis/"
grep -h "throughput 1000\*batchsize" "$LOGS/performance.log" | tail -n 1 || true
if [ -n "$emulate" ]; then
  printf '%-24s %s\n' "EPE ${precision:-fp32} ($backend):" "$(grep -h 'Average EPE' "$LOGS/postprocess.log")" \
    "EPE $emulate (emulated):" "$(grep -h 'Average EPE' "$LOGS/postprocess_emulate_$emulate.log")"
fi
[ -z "$STAND_IN" ] || echo "$STAND_IN"
