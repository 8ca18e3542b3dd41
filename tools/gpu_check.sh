#!/usr/bin/env bash
# The prepared GPU check: at most 8 minutes on one CUDA GPU, nothing from the network.
#
#   bash tools/gpu_check.sh [--out DIR] [--wheels DIR] [--timm-benchmark PATH] [--quick]
#
# Uses the python on PATH (a CUDA build of torch, as GPU machines have preinstalled). With --wheels DIR the
# project and its dependencies are installed from DIR alone (pip --no-index; make DIR on a machine with an
# index: `pip download -d DIR ".[dev]"`, then drop the torch and nvidia-* wheels the GPU machine already has).
# Then: every test on CUDA (the packaging tests, which need a package index, deselected), and
# tools/gpu_check.py: the latency task in tf32/fp16/bf16 with and without CUDA graphs, timm's benchmark.py
# on the same models when --timm-benchmark (or $TIMM_BENCHMARK) names it, the detection benchmark on cuda,
# and the robustness suite with --device cuda against --device cpu. Writes DIR/gpu_check.md (one Markdown table per part), the raw CSVs,
# tests.xml/tests.log and nvidia-smi.txt. Exit status: 0 all passed, 1 a test failed or a number was outside
# the tolerance, 2 no GPU or a missing dependency.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-gpu-check}
wheels=""
check_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --timm-benchmark) check_args+=(--timm-benchmark "$2"); shift 2 ;;
    --quick) check_args+=(--quick); shift ;;
    *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
  esac
done

if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA device visible to torch here; nothing to check" >&2
  exit 2
fi
if [ -n "$wheels" ]; then
  python -m pip install -q --no-index --find-links "$wheels" -e ".[dev]" || exit 2
fi
missing=$(python - <<'PY'
import importlib.util
needed = ["timm", "torchattacks", "pycocotools", "faster_coco_eval", "torchmetrics", "pandas", "jinja2", "yaml",
          "skimage", "sklearn", "safetensors", "pytest", "xdist", "harness"]
print(" ".join(name for name in needed if importlib.util.find_spec(name) is None))
PY
)
if [ -n "$missing" ]; then
  echo "gpu_check: missing here: $missing (install from wheels with --wheels DIR)" >&2
  exit 2
fi

mkdir -p "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
started=$SECONDS
workers=$(( $(nproc) > 12 ? 12 : $(nproc) ))
timeout 230 python -m pytest -q -p no:cacheprovider -n "$workers" -m "not packaging" \
  --junitxml "$out/tests.xml" > "$out/tests.log" 2>&1
tests_rc=$?
tail -n 25 "$out/tests.log"
echo "gpu_check: tests took $((SECONDS - started)) s (exit $tests_rc)"

started=$SECONDS
timeout 250 python tools/gpu_check.py --out "$out" --junit "$out/tests.xml" "${check_args[@]}"
check_rc=$?
echo "gpu_check: measurements took $((SECONDS - started)) s (exit $check_rc)"
if [ "$tests_rc" -ne 0 ] || [ "$check_rc" -ne 0 ]; then exit 1; fi
