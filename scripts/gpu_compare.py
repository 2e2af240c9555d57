#!/usr/bin/env python3
"""The ratio table of `scripts/gpu-compare.sh`: clipstep (`clipstep bench --json`) beside
PyTorch (`scripts/bench_torch.py --json`) on the same card, the same sizes and tensor counts.

    python3 scripts/gpu_compare.py clipstep.json torch.json

Per pair of rows that do the same work: each side's median time, each side's bandwidth as a
fraction of its own copy measured in the same run (clipstep's: the faster of a WGSL copy
kernel and vkCmdCopyBuffer, timed before each run; PyTorch's: `Tensor.copy_` on CUDA), and
PyTorch's time over clipstep's (> 1: clipstep is faster). Bytes are the ones the clipstep
operation must move, for both sides. The clipstep side's device warm-up (copies before each
size's roofline) is printed first.
"""
import json
import sys

# (what, clipstep row, PyTorch row); "{many}" is the many-tensor count.
PAIRS = [
    ("copy (each side's roofline)", "copy (roofline)", "copy (roofline)"),
    ("  clipstep's WGSL copy kernel", "copy (shader)", "copy (roofline)"),
    ("  clipstep's buffer copy", "copy (copy_buffer_to_buffer)", "copy (roofline)"),
    ("global L2 norm", "global_norm (L2)", "get_total_norm (foreach)"),
    ("clip by global L2 norm", "clip_grad_norm (L2)", "clip_grad_norm_ (foreach)"),
    ("clip + AdamW, 1 tensor", "AdamW + clip (fused)", "clip_grad_norm_ + AdamW(fused)"),
    ("clip + AdamW, 1 tensor (foreach)", "AdamW + clip (fused)", "clip_grad_norm_ + AdamW(foreach)"),
    ("clip + AdamW, {many} tensors", "AdamW + clip (fused), {many} tensors",
     "clip_grad_norm_ + AdamW(fused), {many} tensors"),
    ("clip + SGD", "SGD + clip (fused)", "clip_grad_norm_ + SGD(fused)"),
    ("clip + SGD (foreach)", "SGD + clip (fused)", "clip_grad_norm_ + SGD(foreach)"),
    ("clip + RMSprop", "RMSprop + clip (fused)", "clip_grad_norm_ + RMSprop(fused)"),
    ("clip + RMSprop (foreach)", "RMSprop + clip (fused)", "clip_grad_norm_ + RMSprop(foreach)"),
]


def rows(report):
    return {(m["op"], m["elements"]): m for m in report["measurements"]}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ours = json.load(open(sys.argv[1]))
    theirs = json.load(open(sys.argv[2]))
    if isinstance(theirs, list):
        cuda = [r for r in theirs if "cuda" in r["backend"]]
        theirs = (cuda or theirs)[0]
    many = max((m["tensors"] for m in ours["measurements"]), default=1)
    a, b = rows(ours), rows(theirs)
    print(f"clipstep: {ours['adapter']} ({ours['backend']}), timing by {ours['timing']}")
    print(f"PyTorch:  {theirs['adapter']} ({theirs['backend']}), timing by {theirs['timing']}")
    # The device warm-up before each size's roofline (`clipstep bench --warm-seconds`):
    # without one, a GPU's first copies run at idle clocks and the roofline row reads slow.
    for w in ours.get("warm_up", []):
        print(f"clipstep warm-up at {w['elements']}: {w['copies']} copies in {w['seconds']:.2f} s, "
              f"first {w['first_ms']:.3f} ms, last {w['last_ms']:.3f} ms")
    if "warm_up" not in ours:
        print("clipstep: no warm-up recorded (a bench older than --warm-seconds): its copy rows may be cold")
    head = f"{'work':<34} {'elements':>10} {'clipstep ms':>12} {'torch ms':>10} " \
           f"{'clipstep/copy':>14} {'torch/copy':>11} {'torch/clipstep time':>20}"
    print(head)
    sizes = sorted({n for (_, n) in a})
    for n in sizes:
        for what, mine, other in PAIRS:
            mine, other, what = (s.format(many=many) for s in (mine, other, what))
            if (mine, n) not in a or (other, n) not in b:
                continue
            x, y = a[(mine, n)], b[(other, n)]
            # PyTorch's rows count their own bytes; put both on clipstep's bytes.
            y_frac = x["bytes"] / (y["median_ms"] * 1e-3) / 1e9 / (8 * n / (b[("copy (roofline)", n)]["median_ms"] * 1e-3) / 1e9) \
                if ("copy (roofline)", n) in b else float("nan")
            print(f"{what:<34} {n:>10} {x['median_ms']:>12.4f} {y['median_ms']:>10.4f} "
                  f"{x['fraction_of_copy']:>14.2f} {y_frac:>11.2f} {y['median_ms'] / x['median_ms']:>20.2f}")
        print()


if __name__ == "__main__":
    main()
