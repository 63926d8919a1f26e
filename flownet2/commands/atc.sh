#!/usr/bin/env bash
# The Ascend guide's ATC step: ONNX -> offline model (.om) for an Ascend NPU.
#
#   bash scripts/atc.sh --model flownet2_bs1_sim_fix.onnx [--bs 1] [--soc Ascend310P3]
#        [--height 448 --width 1024] [--output flownet2_bs1] [--cann DIR] [--skip-op-check]
#        [any other atc flag, passed on unchanged: --precision_mode=allow_mix_precision,
#         --keep_dtype keep.cfg, --modify_mixlist ops.json, --op_select_implmode high_precision, ...]
#
# runs   atc --framework=5 --model=M --output=flownet2_bs{bs} --input_format=NCHW
#            --input_shape="x1:{bs},3,H,W;x2:{bs},3,H,W" --log=debug --soc_version=Ascend{chip} [flags]
# A flag of yours that this line also sets (--log, --input_format, ...) replaces it.
# Defaults: --bs/--height/--width from the model's x1 input, --soc from `npu-smi info`,
# --output flownet2_bs{bs} beside the model (--bs is also spelled --batch-size or --batch_size).
# Before ATC: the op check (python -m flownet2.onnx.atc).
# CANN: --cann DIR (its set_env.sh), else atc on PATH, else the first set_env.sh found under
# $ASCEND_HOME_PATH, /usr/local/Ascend/{cann,ascend-toolkit} (CANN 8.5+ / 5.1-8.x), ~/Ascend/{...}.
# Writes <output>.om.weights (the ONNX weights label; an .om keeps no metadata).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"  # the folder that holds the flownet2 package
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

die() { echo "atc.sh: error: $*" >&2; exit 2; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

model="" bs="" soc="" height="" width="" output="" cann="" skip_check=""
passed=()     # atc flags as typed
declare -A given=()  # atc flag name -> value, to know what the user set
while [ $# -gt 0 ]; do
  case "$1" in
    --model|--bs|--batch-size|--batch_size|--soc|--soc_version|--height|--width|--output|--cann)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --model) model="$2" ;; --bs|--batch-size|--batch_size) bs="$2" ;; --soc|--soc_version) soc="$2" ;; --height) height="$2" ;;
        --width) width="$2" ;; --output) output="$2" ;; --cann) cann="$2" ;;
      esac
      shift 2 ;;
    --model=*|--output=*|--soc_version=*) # the atc spelling of our own flags
      name="${1%%=*}"; val="${1#*=}"
      case "$name" in --model) model="$val" ;; --output) output="$val" ;; --soc_version) soc="$val" ;; esac
      shift ;;
    --skip-op-check|--skip_op_check) skip_check=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) # any other atc flag: --name=value, or --name value when the next word is not a flag
      passed+=("$1")
      name="${1#-}"; name="${name#-}"
      if [[ "$name" == *=* ]]; then
        given["${name%%=*}"]="${name#*=}"
      elif [ $# -ge 2 ] && [[ "$2" != -* ]]; then
        passed+=("$2"); given["$name"]="$2"; shift
      else
        given["$name"]=""
      fi
      shift ;;
    *) die "unexpected argument '$1' (atc flags start with --; see --help)" ;;
  esac
done
[ -n "$model" ] || die "--model is required (the *_sim_fix.onnx from fix_onnx.py)"
[ -f "$model" ] || die "$model: model file not found"
for v in bs height width; do
  val="${!v}"
  [ -z "$val" ] || [[ "$val" =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer, got '$val'"
done
for f in keep_dtype modify_mixlist; do  # ATC would stop on these only after loading the model
  [ -z "${given[$f]+x}" ] || [ -f "${given[$f]}" ] || die "--$f ${given[$f]}: file not found"
done

# Op check and the model's static input shape (batch, height, width of x1: the exporter's contract).
shape="$("$PYTHON" -m flownet2.onnx.atc prepare "$model" ${skip_check:+--skip-op-check})" || exit 2
read -r model_bs model_h model_w <<< "$shape"
bs="${bs:-$model_bs}" height="${height:-$model_h}" width="${width:-$model_w}"
[ "$bs" != 0 ] && [ "$height" != 0 ] && [ "$width" != 0 ] || die "$model: no static NCHW input; pass --bs --height --width"
if [ "$model_bs" != 0 ] && [ "$bs" != "$model_bs" ]; then
  die "$model was exported for batch $model_bs, not --bs $bs: re-export with Flownet2_pth2onnx.py --batch_size $bs"
fi
if [ "$model_h" != 0 ] && { [ "$height" != "$model_h" ] || [ "$width" != "$model_w" ]; }; then
  die "$model was exported for ${model_h}x${model_w}, not --height $height --width $width"
fi

# CANN's environment. An explicit --cann wins; otherwise an already set-up shell (atc on PATH) wins.
source_env() { echo "atc.sh: sourcing $1"; set +u; source "$1"; set -u; }
if [ -n "$cann" ]; then
  env=""
  for c in "$cann" "$cann/set_env.sh" "$cann/../set_env.sh"; do [ -f "$c" ] && { env="$c"; break; }; done
  [ -n "$env" ] || die "--cann $cann: no set_env.sh there (give the CANN folder, e.g. /usr/local/Ascend/ascend-toolkit)"
  source_env "$env"
elif ! command -v atc >/dev/null 2>&1; then
  for env in ${ASCEND_HOME_PATH:+"$ASCEND_HOME_PATH/set_env.sh" "$ASCEND_HOME_PATH/../set_env.sh"} \
             /usr/local/Ascend/cann/set_env.sh /usr/local/Ascend/ascend-toolkit/set_env.sh \
             "$HOME/Ascend/cann/set_env.sh" "$HOME/Ascend/ascend-toolkit/set_env.sh"; do
    [ -f "$env" ] && { source_env "$env"; break; }
  done
fi
command -v atc >/dev/null 2>&1 || die "atc not found: install the CANN toolkit (Ascend-cann-toolkit; no set_env.sh under \$ASCEND_HOME_PATH, /usr/local/Ascend/{cann,ascend-toolkit} or ~/Ascend) or pass --cann DIR; without Ascend: bash scripts/run_all.sh --backend onnxruntime"

if [ -z "$soc" ]; then
  command -v npu-smi >/dev/null 2>&1 || die "no --soc given and npu-smi not found: pass e.g. --soc Ascend310P3"
  # The first NPU row of `npu-smi info`: "| 0       310P3      | OK ..." -> 310P3
  soc="$(npu-smi info | awk -F'|' '$2 ~ /^ *[0-9]+ +[0-9][0-9][0-9][0-9A-Za-z]* *$/ { split($2, a, " "); print a[2]; exit }')"
  [ -n "$soc" ] || die "could not read the chip name from 'npu-smi info': pass e.g. --soc Ascend310P3"
  echo "atc.sh: chip from npu-smi: $soc"
fi
case "$soc" in Ascend*) ;; *) soc="Ascend$soc" ;; esac
if [ -z "${given[precision_mode]+x}" ] && [ "$soc" = "Ascend310" ]; then
  passed+=("--precision_mode=allow_mix_precision")  # the guide: Ascend310 needs it, 310P runs fine in fp16
  echo "atc.sh: Ascend310: using --precision_mode=allow_mix_precision"
fi

output="${output:-$(dirname "$model")/flownet2_bs$bs}"
output="${output%.om}"
mkdir -p "$(dirname "$output")"
cmd=(atc)
for kv in framework=5 "model=$model" "output=$output" input_format=NCHW \
          "input_shape=x1:$bs,3,$height,$width;x2:$bs,3,$height,$width" log=debug "soc_version=$soc"; do
  [ -n "${given[${kv%%=*}]+x}" ] || cmd+=("--$kv")
done
cmd+=(${passed[@]+"${passed[@]}"})
echo "+ ${cmd[*]}"
"${cmd[@]}"

# Some ATC versions name the file <output>_<os>_<arch>.om; give it the name the guide uses.
if [ ! -f "$output.om" ]; then
  shopt -s nullglob
  found=("$output"_*.om)
  [ ${#found[@]} -eq 1 ] || die "atc finished but $output.om was not written"
  mv -f "${found[0]}" "$output.om"
fi
echo "atc.sh: wrote $output.om ($("$PYTHON" -m flownet2.onnx.atc sidecar "$model" "$output.om"))"
