#!/usr/bin/env bash
# clipstep on Vulkan beside PyTorch on CUDA, on the same card, at the same sizes and tensor
# counts; prints the ratio table (scripts/gpu_compare.py) and leaves both JSON reports in
# $OUT_DIR. Needs a CUDA GPU with a Vulkan driver, PyTorch, and either cargo or a built
# `clipstep` binary in $CLIPSTEP.
#
#   scripts/gpu-compare.sh                       # sizes 1M,16M,64M,256M; 2,000 tensors
#   SIZES=16M,64M TENSORS=4000 scripts/gpu-compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="${SIZES:-1M,16M,64M,256M}"
TENSORS="${TENSORS:-2000}"
REPEATS="${REPEATS:-21}"
OUT_DIR="${OUT_DIR:-out/gpu-compare}"
mkdir -p "$OUT_DIR"
if [ -z "${CLIPSTEP:-}" ]; then
  cargo build --release -p clipstep-tools
  CLIPSTEP=target/release/clipstep
fi
export CLIPSTEP_REQUIRE_GPU=1 WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
"$CLIPSTEP" devices
"$CLIPSTEP" bench --sizes "$SIZES" --tensors "$TENSORS" --repeats "$REPEATS" --json \
  > "$OUT_DIR/clipstep.json"
python3 scripts/bench_torch.py --device cuda --sizes "$SIZES" --tensors "$TENSORS" \
  --repeats "$REPEATS" --json > "$OUT_DIR/torch.json"
python3 scripts/gpu_compare.py "$OUT_DIR/clipstep.json" "$OUT_DIR/torch.json" | tee "$OUT_DIR/compare.txt"
