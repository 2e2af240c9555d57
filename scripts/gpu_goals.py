#!/usr/bin/env python3
"""The GPU speed goals of issue 27, pass or fail, from `clipstep bench --json` runs.

    python3 scripts/gpu_goals.py run1.json run2.json [--gl-verify ok|failed|skipped]

Each goal is read from every run and passes only when every run passes it (a ratio must
reproduce). A goal whose rows a run lacks (a size not benched, `--only`) says "not measured".
On a software adapter (lavapipe) the table is printed for the record, but the goals are a
real GPU's and are not judged there.

| goal | read from |
|---|---|
| norm pass >= 0.8 of copy from 16M | row `global_norm (L2)`, fraction_of_copy, sizes >= 16M |
| 1M step <= 2x copy time | row `AdamW + clip (fused)` over row `copy (roofline)`, 1M |
| host encode <= 5 us | `encode`, every set's median |
| pooled <= 1.1x own slabs | `ratios`, pooled_over_own_slabs_time (both pool kinds) |
| f16 within 1.1x of bf16 | rows `..., f16 grads + params, f32 master` over `..., bf16 grads + params, f32 master` |
| LAMB <= 1.45x AdamW time, 64M-256M | row `LAMB + clip (trust pass + update)` over `AdamW + clip (fused)` |
| roofline row is the warm copy | row `copy (roofline)` within 1.15x of the copy the AdamW row was divided by |
"""
import argparse
import json

ADAMW = "AdamW + clip (fused)"
BF16 = "AdamW + clip (fused), bf16 grads + params, f32 master"
F16 = "AdamW + clip (fused), f16 grads + params, f32 master"
LAMB = "LAMB + clip (trust pass + update)"
M = 1 << 20


def size(n):
    return f"{n // M}M" if n % M == 0 else str(n)


class Run:
    def __init__(self, report):
        self.report = report
        self.rows = {(m["op"], m["elements"]): m for m in report["measurements"]}
        self.sizes = sorted({n for (_, n) in self.rows})
        self.ratios = {r["elements"]: r for r in report["ratios"]}

    def ms(self, op, n):
        m = self.rows.get((op, n))
        return m["median_ms"] if m else None

    def software(self):
        return "llvmpipe" in self.report["adapter"] or self.report["backend"] == "Cpu"


def goals():
    """Each goal: (what, bar, test(value) -> bool, per run: [(where, value)])."""

    def norm(run):
        return [(size(n), run.rows[("global_norm (L2)", n)]["fraction_of_copy"])
                for n in run.sizes if n >= 16 * M and ("global_norm (L2)", n) in run.rows]

    def small_step(run):
        n = M
        a, c = run.ms(ADAMW, n), run.ms("copy (roofline)", n)
        return [(size(n), a / c)] if a and c else []

    def encode(run):
        # The goal is the recording's time; the encoder's finish (wgpu's own) is shown beside.
        return [(f"{e['tensors']} in {e['storage']}"
                 + (f" (+ finish {e['finish_median_us']:.1f})" if "finish_median_us" in e else ""),
                 e["median_us"]) for e in run.report["encode"]]

    def pooled(run):
        out = []
        for n, r in sorted(run.ratios.items()):
            for key, what in [("pooled_over_own_slabs_time", "shared"),
                              ("pooled_split_over_own_slabs_time", "split")]:
                v = r.get(key, {}).get("median")
                if v is not None and v == v:
                    out.append((f"{size(n)} {what}", v))
        return out

    def f16(run):
        out = []
        for n in run.sizes:
            a, b = run.ms(F16, n), run.ms(BF16, n)
            if a and b:
                paired = run.ratios.get(n, {}).get("f16_adamw_over_bf16_time", {}).get("median")
                where = size(n) if paired is None else f"{size(n)} (alternately {paired:.2f})"
                out.append((where, a / b))
        return out

    def lamb(run):
        return [(size(n), run.ms(LAMB, n) / run.ms(ADAMW, n))
                for n in run.sizes if n >= 64 * M and run.ms(LAMB, n) and run.ms(ADAMW, n)]

    def roofline(run):
        out = []
        for n in run.sizes:
            row, copy = run.rows.get((ADAMW, n)), run.ms("copy (roofline)", n)
            if row and copy and row["fraction_of_copy"] == row["fraction_of_copy"]:
                # fraction = (bytes / t) / (8n / t_copy): the copy timed beside the row.
                beside = row["fraction_of_copy"] * row["median_ms"] * 8 * n / row["bytes"]
                out.append((size(n), copy / beside))
        return out

    return [
        ("global_norm / copy, from 16M", ">= 0.8", lambda v: v >= 0.8, norm),
        ("fused AdamW 1M / copy 1M time", "<= 2", lambda v: v <= 2.0, small_step),
        ("host encode of one step (us)", "<= 5", lambda v: v <= 5.0, encode),
        ("pooled / own slabs time", "<= 1.1", lambda v: v <= 1.1, pooled),
        ("f16 / bf16 time (master weights)", "<= 1.1", lambda v: v <= 1.1, f16),
        ("LAMB / AdamW time, 64M and up", "<= 1.45", lambda v: v <= 1.45, lamb),
        ("roofline row / copy beside the rows", "<= 1.15", lambda v: v <= 1.15, roofline),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="clipstep bench --json outputs")
    ap.add_argument("--gl-verify", default=None, help="ok, failed or skipped: `clipstep verify` on GL")
    args = ap.parse_args()
    runs = [Run(json.load(open(p))) for p in args.runs]
    first = runs[0].report
    software = any(r.software() for r in runs)
    print(f"goals on {first['adapter']} ({first['backend']}), {len(runs)} run(s)"
          + (" -- a software adapter: values for the record, goals not judged" if software else ""))
    print(f"{'goal':<38} {'bar':>8}  {'run':>3}  values")
    failed = 0
    for what, bar, test, read in goals():
        verdicts = []
        for k, run in enumerate(runs, 1):
            values = read(run)
            shown = ", ".join(f"{where}: {v:.2f}" for where, v in values) or "not measured"
            verdicts.append(all(test(v) for _, v in values) if values else None)
            print(f"{what if k == 1 else '':<38} {bar if k == 1 else '':>8}  {k:>3}  {shown}")
        if None in verdicts:
            verdict = "not measured"
        elif software:
            verdict = "(not judged)"
        else:
            verdict = "PASS" if all(verdicts) else "FAIL"
            failed += verdict == "FAIL"
        print(f"{'':<38} {'':>8}  ->   {verdict}")
    if args.gl_verify is not None:
        print(f"{'clipstep verify on GL':<38} {'runs':>8}        {args.gl_verify}")
    print(f"{failed} goal(s) failed" if not software else "software adapter: no goal judged")


if __name__ == "__main__":
    main()
