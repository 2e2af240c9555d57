#!/usr/bin/env python3
"""PyTorch side of `clipstep bench`: the same operations, sizes and JSON shape.

Times, per device (CPU, and CUDA where present) and size:
  - copy (roofline): dst.copy_(src), 8 bytes per element;
  - clip_grad_norm_ alone (foreach), 12 bytes per element;
  - clip_grad_norm_ + AdamW(fused=True).step(), and the foreach AdamW, 40 bytes per element
    (PyTorch's norm reads g, the clip reads and writes g, AdamW moves 28 bytes);
  - the fused pair again over 2,000 tensors of the same total size;
  - clip_grad_norm_ + SGD with Nesterov momentum (fused, foreach; 24 bytes per element) and
    centered RMSprop with momentum (fused where this PyTorch has it, foreach; 40), as
    clipstep's bench runs each rule's first example.
GB/s counts the bytes clipstep's fused step must move (32 per element) for the AdamW rows,
so both tools are compared on the same work: time is what differs.

    python3 scripts/bench_torch.py --device all --sizes 1M,16M,64M --json > torch.json
"""
import argparse
import json
import statistics
import sys
import time

import torch


def parse_size(s):
    s = s.strip()
    scale = {"K": 1 << 10, "M": 1 << 20}.get(s[-1].upper(), 1)
    return int(s[:-1] if scale > 1 else s) * scale


def timer(device):
    if device.type == "cuda":
        def run(fn, warmup, repeats):
            for _ in range(warmup):
                fn()
            times = []
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            return times
        return run, "cuda events"

    def run(fn, warmup, repeats):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times
    return run, "wall clock"


def tensors(n, count, device):
    per = n // count
    sizes = [per] * (count - 1) + [n - per * (count - 1)]
    params = [torch.nn.Parameter(torch.randn(s, device=device) * 0.05) for s in sizes]
    for p in params:
        p.grad = torch.randn_like(p) * 0.02
    return params


def bench_device(device, sizes, many, warmup, repeats):
    run, timing = timer(device)
    rows, ratios = [], []

    def measure(op, n, count, bytes_per_elem, fn, copy_gbps):
        t = sorted(run(fn, warmup, repeats))
        median = statistics.median(t)
        gbps = bytes_per_elem * n / median / 1e9
        rows.append({
            "op": op, "elements": n, "tensors": count, "bytes": bytes_per_elem * n,
            "median_ms": median * 1e3, "min_ms": t[0] * 1e3, "max_ms": t[-1] * 1e3,
            "gb_per_s": gbps, "fraction_of_copy": gbps / copy_gbps if copy_gbps else 1.0,
        })
        return median

    for n in sizes:
        src, dst = torch.randn(n, device=device), torch.empty(n, device=device)
        t_copy = measure("copy (roofline)", n, 1, 8, lambda: dst.copy_(src), 0)
        copy_gbps = 8 * n / t_copy / 1e9
        del src, dst
        params = tensors(n, 1, device)
        if hasattr(torch.nn.utils, "get_total_norm"):
            measure("get_total_norm (foreach)", n, 1, 4,
                    lambda: torch.nn.utils.get_total_norm([p.grad for p in params], foreach=True),
                    copy_gbps)
        measure("clip_grad_norm_ (foreach)", n, 1, 12,
                lambda: torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True), copy_gbps)
        times = {}
        for kind in ("fused", "foreach"):
            for count in (1, many):
                ps = params if count == 1 else tensors(n, count, device)
                try:
                    opt = torch.optim.AdamW(ps, lr=1e-3, **{kind: True})
                except (RuntimeError, TypeError) as e:
                    print(f"# AdamW({kind}=True) unavailable on {device}: {e}", file=sys.stderr, flush=True)
                    continue

                def step(ps=ps, opt=opt):
                    torch.nn.utils.clip_grad_norm_(ps, 1.0, foreach=True)
                    opt.step()
                label = f"clip_grad_norm_ + AdamW({kind})" + (f", {count} tensors" if count > 1 else "")
                times[(kind, count)] = measure(label, n, count, 32, step, copy_gbps)
        # SGD and RMSprop as clipstep's bench runs them (each rule's first example,
        # RuleConfig::examples: SGD with Nesterov momentum, 24 bytes per element: read p, g,
        # the buffer, write p, the buffer, and the norm's read; centered RMSprop with momentum,
        # 40: three states), the global-norm clip in front of each.
        for name, make, bytes_per in (
            ("SGD", lambda ps, kind: torch.optim.SGD(
                ps, lr=0.05, momentum=0.9, nesterov=True, **{kind: True}), 24),
            ("RMSprop", lambda ps, kind: torch.optim.RMSprop(
                ps, lr=1e-3, centered=True, momentum=0.5, **{kind: True}), 40),
        ):
            for kind in ("fused", "foreach"):
                try:
                    opt = make(params, kind)
                except (RuntimeError, TypeError, ValueError) as e:
                    print(f"# {name}({kind}=True) unavailable on {device}: {e}", file=sys.stderr, flush=True)
                    continue

                def step(ps=params, opt=opt):
                    torch.nn.utils.clip_grad_norm_(ps, 1.0, foreach=True)
                    opt.step()
                measure(f"clip_grad_norm_ + {name}({kind})", n, 1, bytes_per, step, copy_gbps)
        if ("fused", 1) in times:
            ratios.append({
                "elements": n,
                "fused_adamw_fraction_of_copy": 32 * n / times[("fused", 1)] / 1e9 / copy_gbps,
                "many_over_one_tensor_time": times.get(("fused", many), float("nan")) / times[("fused", 1)],
            })
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return {"adapter": name, "backend": f"PyTorch {torch.__version__} {device.type}", "timing": timing,
            "measurements": rows, "ratios": ratios}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--sizes", default="1M,16M,64M")
    ap.add_argument("--tensors", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    reports = [bench_device(d, sizes, args.tensors, args.warmup, args.repeats) for d in devices]
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    for r in reports:
        print(f"{r['adapter']} ({r['backend']}), timing by {r['timing']}")
        print(f"{'operation':<46} {'elements':>10} {'tensors':>7} {'median ms':>10} {'GB/s':>9} {'of copy':>8}")
        for m in r["measurements"]:
            print(f"{m['op']:<46} {m['elements']:>10} {m['tensors']:>7} {m['median_ms']:>10.3f} "
                  f"{m['gb_per_s']:>9.1f} {100 * m['fraction_of_copy']:>7.0f}%")
        print()


if __name__ == "__main__":
    main()
