#!/usr/bin/env bash
# The Ascend guide's ATC step: ONNX -> offline model (.om) for an Ascend NPU.
#
#   bash scripts/atc.sh --model flownet2_bs1_sim_fix.onnx --bs 1 [--soc Ascend310P3]
#        [--precision_mode allow_mix_precision] [--height 448 --width 1024] [--output flownet2_bs1]
#
# runs   atc --framework=5 --model=M --output=flownet2_bs{bs} --input_format=NCHW
#            --input_shape="x1:{bs},3,H,W;x2:{bs},3,H,W" --log=debug --soc_version=Ascend{chip}
# Defaults: --bs/--height/--width from the model's x1 input, --soc from `npu-smi info`,
# --output flownet2_bs{bs} beside the model. Sources the CANN set_env.sh when atc is not on PATH.
# Writes <output>.om.weights (the ONNX weights label; an .om keeps no metadata).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

die() { echo "atc.sh: error: $*" >&2; exit 2; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

model="" bs="" soc="" precision="" height="" width="" output=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model|--bs|--soc|--precision_mode|--height|--width|--output)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --model) model="$2" ;; --bs) bs="$2" ;; --soc) soc="$2" ;; --precision_mode) precision="$2" ;;
        --height) height="$2" ;; --width) width="$2" ;; --output) output="$2" ;;
      esac
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$model" ] || die "--model is required (the *_sim_fix.onnx from fix_onnx.py)"
[ -f "$model" ] || die "$model: model file not found"
for v in bs height width; do
  val="${!v}"
  [ -z "$val" ] || [[ "$val" =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer, got '$val'"
done

# The model's static input shape: batch, height, width of x1 (the exporter's contract).
read -r model_bs model_h model_w < <("$PYTHON" - "$model" 2>/dev/null <<'EOF'
import sys, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
inputs = {i.name: i for i in m.graph.input}
d = [x.dim_value for x in inputs.get("x1", m.graph.input[0]).type.tensor_type.shape.dim]
print(*((d[0], d[2], d[3]) if len(d) == 4 else (0, 0, 0)))
EOF
) || die "$model: cannot read the ONNX inputs"
bs="${bs:-$model_bs}" height="${height:-$model_h}" width="${width:-$model_w}"
[ "$bs" != 0 ] && [ "$height" != 0 ] && [ "$width" != 0 ] || die "$model: no static NCHW input; pass --bs --height --width"
if [ "$model_bs" != 0 ] && [ "$bs" != "$model_bs" ]; then
  die "$model was exported for batch $model_bs, not --bs $bs: re-export with Flownet2_pth2onnx.py --batch_size $bs"
fi
if [ "$model_h" != 0 ] && { [ "$height" != "$model_h" ] || [ "$width" != "$model_w" ]; }; then
  die "$model was exported for ${model_h}x${model_w}, not --height $height --width $width"
fi

# CANN's environment: only when atc is not already on PATH (an already set-up shell wins).
if ! command -v atc >/dev/null 2>&1; then
  for env in "${ASCEND_SET_ENV:-}" "${ASCEND_TOOLKIT_HOME:+$ASCEND_TOOLKIT_HOME/set_env.sh}" \
             /usr/local/Ascend/ascend-toolkit/set_env.sh "$HOME/Ascend/ascend-toolkit/set_env.sh"; do
    if [ -n "$env" ] && [ -f "$env" ]; then
      echo "atc.sh: sourcing $env"
      set +u; source "$env"; set -u
      break
    fi
  done
fi
command -v atc >/dev/null 2>&1 || die "atc not found: install the CANN toolkit (Ascend-cann-toolkit) and
  source /usr/local/Ascend/ascend-toolkit/set_env.sh, or run without Ascend:
  bash scripts/run_all.sh --backend onnxruntime"

if [ -z "$soc" ]; then
  command -v npu-smi >/dev/null 2>&1 || die "no --soc given and npu-smi not found: pass e.g. --soc Ascend310P3"
  # The first NPU row of `npu-smi info`: "| 0       310P3      | OK ..." -> 310P3
  soc="$(npu-smi info | awk -F'|' '$2 ~ /^ *[0-9]+ +[0-9][0-9][0-9][0-9A-Za-z]* *$/ { split($2, a, " "); print a[2]; exit }')"
  [ -n "$soc" ] || die "could not read the chip name from 'npu-smi info': pass e.g. --soc Ascend310P3"
  echo "atc.sh: chip from npu-smi: $soc"
fi
case "$soc" in Ascend*) ;; *) soc="Ascend$soc" ;; esac
if [ -z "$precision" ] && [ "$soc" = "Ascend310" ]; then
  precision="allow_mix_precision"  # the guide: Ascend310 needs it, 310P runs fine in fp16
  echo "atc.sh: Ascend310: using --precision_mode=$precision"
fi

output="${output:-$(dirname "$model")/flownet2_bs$bs}"
output="${output%.om}"
mkdir -p "$(dirname "$output")"
cmd=(atc --framework=5 "--model=$model" "--output=$output" --input_format=NCHW
     "--input_shape=x1:$bs,3,$height,$width;x2:$bs,3,$height,$width" --log=debug "--soc_version=$soc")
[ -z "$precision" ] || cmd+=("--precision_mode=$precision")
echo "+ ${cmd[*]}"
"${cmd[@]}"

# Some ATC versions name the file <output>_<os>_<arch>.om; give it the name the guide uses.
if [ ! -f "$output.om" ]; then
  shopt -s nullglob
  found=("$output"_*.om)
  [ ${#found[@]} -eq 1 ] || die "atc finished but $output.om was not written"
  mv -f "${found[0]}" "$output.om"
fi

label="$("$PYTHON" -c 'import sys; from flownet2.provenance import weights_label; print(weights_label(sys.argv[1]) or "")' "$model")"
if [ -n "$label" ]; then
  tmp="$(mktemp "$output.om.weights.XXXXXX")"
  printf '%s\n' "$label" > "$tmp" && mv -f "$tmp" "$output.om.weights"
  echo "atc.sh: wrote $output.om (weights: $label)"
else
  rm -f "$output.om.weights"
  echo "atc.sh: wrote $output.om (weights: unknown, no label in $model)"
fi
