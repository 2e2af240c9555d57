#!/usr/bin/env bash
# One command for a GPU machine, from a built `clipstep` binary (no cargo needed there):
# the adapters, `clipstep verify` on Vulkan and on GL, `clipstep bench` twice (each size's
# roofline after a warm-up of the device, `--warm-seconds`), the PyTorch comparison
# (scripts/gpu-compare.sh's table), a 20,000-step soak, and the goals of issue 27 with pass
# or fail (scripts/gpu_goals.py). Everything lands in $OUT_DIR; the summary is printed last.
# Under 6 minutes on an H100/H200. On a software adapter (lavapipe) it runs too, at a small
# size, and says which parts are a GPU's only (the PyTorch comparison needs CUDA; the
# goals are printed, not judged).
#
#   CLIPSTEP=target/release/clipstep scripts/gpu-check.sh
#   SIZES=16M,64M OUT_DIR=/tmp/check scripts/gpu-check.sh
#
# Exit status: non-zero when verify fails on Vulkan, a bench or the soak fails, or a goal
# fails on a real GPU (GL verify's failure is reported, not fatal: some drivers lack GL
# compute headless).
set -uo pipefail
cd "$(dirname "$0")/.."
CLIPSTEP="${CLIPSTEP:-target/release/clipstep}"
OUT_DIR="${OUT_DIR:-out/gpu-check}"
TENSORS="${TENSORS:-2000}"
REPEATS="${REPEATS:-7}"
mkdir -p "$OUT_DIR"
if [ ! -x "$CLIPSTEP" ]; then
  echo "gpu-check: no clipstep binary at $CLIPSTEP (cargo build --release -p clipstep-tools, or set CLIPSTEP)" >&2
  exit 2
fi
export CLIPSTEP_REQUIRE_GPU=1
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
status=0
summary=()
note() { summary+=("$1"); echo "gpu-check: $1"; }
stage() { echo; echo "=== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

stage "devices"
WGPU_BACKEND=vulkan "$CLIPSTEP" devices | tee "$OUT_DIR/devices.txt"
# Only software adapters (Mesa's llvmpipe, type Cpu): small sizes, the goals are a GPU's.
software=1
if awk 'NR > 1 && !/ Cpu /' "$OUT_DIR/devices.txt" | grep -q .; then
  software=0
fi
if [ "$software" = 1 ]; then
  SIZES="${SIZES:-1M}"; SOAK_ELEMENTS="${SOAK_ELEMENTS:-64K}"; TENSORS="${TENSORS_SW:-200}"
  note "software adapter (llvmpipe): sizes $SIZES, soak of $SOAK_ELEMENTS elements; GPU-only parts say so"
else
  SIZES="${SIZES:-1M,16M,64M,256M}"; SOAK_ELEMENTS="${SOAK_ELEMENTS:-1M}"
fi

stage "verify on Vulkan"
if WGPU_BACKEND=vulkan "$CLIPSTEP" verify > "$OUT_DIR/verify-vulkan.txt" 2>&1; then
  note "verify on Vulkan: $(tail -1 "$OUT_DIR/verify-vulkan.txt")"
else
  note "verify on Vulkan FAILED (see $OUT_DIR/verify-vulkan.txt)"; status=1
fi
tail -3 "$OUT_DIR/verify-vulkan.txt"

stage "verify on GL"
if WGPU_BACKEND=gl "$CLIPSTEP" verify > "$OUT_DIR/verify-gl.txt" 2>&1; then
  gl=ok; note "verify on GL: $(tail -1 "$OUT_DIR/verify-gl.txt")"
else
  gl=failed; note "verify on GL failed: $(grep -m1 -i "error\|could not\|lost" "$OUT_DIR/verify-gl.txt" || tail -1 "$OUT_DIR/verify-gl.txt")"
fi
tail -3 "$OUT_DIR/verify-gl.txt"

for run in 1 2; do
  stage "bench, run $run (sizes $SIZES)"
  if WGPU_BACKEND=vulkan "$CLIPSTEP" bench --sizes "$SIZES" --tensors "$TENSORS" \
      --repeats "$REPEATS" --json > "$OUT_DIR/bench-$run.json" 2> "$OUT_DIR/bench-$run.log"; then
    note "bench run $run: $OUT_DIR/bench-$run.json"
  else
    note "bench run $run FAILED: $(tail -c 300 "$OUT_DIR/bench-$run.log")"; status=1
  fi
done

stage "PyTorch on CUDA, the same sizes"
if [ "$software" = 0 ] && python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  python3 scripts/bench_torch.py --device cuda --sizes "$SIZES" --tensors "$TENSORS" \
    --repeats "$REPEATS" --json > "$OUT_DIR/torch.json" \
    && python3 scripts/gpu_compare.py "$OUT_DIR/bench-1.json" "$OUT_DIR/torch.json" | tee "$OUT_DIR/compare.txt" \
    && note "PyTorch comparison: $OUT_DIR/compare.txt" \
    || note "PyTorch comparison failed"
else
  note "PyTorch comparison skipped: a GPU-only part (needs a real adapter and PyTorch with CUDA)"
fi

stage "soak: 20,000 clipped AdamW steps of $SOAK_ELEMENTS elements"
if WGPU_BACKEND=vulkan "$CLIPSTEP" soak --steps 20000 --elements "$SOAK_ELEMENTS" --every 5000 > "$OUT_DIR/soak.txt" 2>&1; then
  note "soak: $(tail -1 "$OUT_DIR/soak.txt")"
else
  note "soak FAILED (see $OUT_DIR/soak.txt)"; status=1
fi
tail -4 "$OUT_DIR/soak.txt"

stage "goals"
runs=()
for run in 1 2; do [ -s "$OUT_DIR/bench-$run.json" ] && runs+=("$OUT_DIR/bench-$run.json"); done
if [ ${#runs[@]} -gt 0 ]; then
  python3 scripts/gpu_goals.py "${runs[@]}" --gl-verify "$gl" | tee "$OUT_DIR/goals.txt"
  if [ "$software" = 0 ] && ! grep -q "^0 goal(s) failed" "$OUT_DIR/goals.txt"; then status=1; fi
fi

stage "summary ($((SECONDS / 60))m$((SECONDS % 60))s)"
printf '  %s\n' "${summary[@]}"
exit $status
