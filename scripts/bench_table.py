#!/usr/bin/env python3
"""Two or more `clipstep bench --json` runs side by side, as the markdown tables of
BENCHMARKS.md: per operation and size, each run's median time and its fraction of copy
(the median of per-run ratios to the copy timed just before, with their range), and the
fraction of the shader copy; then the bar's ratios per run (two operations timed
alternately: median and range over the pairs).

    python3 scripts/bench_table.py run1.json run2.json
"""
import json
import sys


def size(n):
    return f"{n >> 20}M" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n / (1 << 20):.1f}M"


def main():
    runs = [json.load(open(p)) for p in sys.argv[1:]]
    if not runs:
        sys.exit(__doc__)
    print(f"{runs[0]['adapter']} ({runs[0]['backend']}), timing by {runs[0]['timing']}\n")
    head = "| operation | elements | tensors |" + "".join(
        f" run {k + 1}: ms | of copy (range) | of shader copy |" for k in range(len(runs)))
    print(head)
    print("|---|---:|---:|" + "---:|---:|---:|" * len(runs))
    rows = [{(m["op"], m["elements"]): m for m in r["measurements"]} for r in runs]
    for m in runs[0]["measurements"]:
        if m["op"] == "copy (roofline)":
            continue
        key = (m["op"], m["elements"])
        cells = ""
        for r in rows:
            x = r.get(key)
            if x is None:
                cells += " – | – | – |"
                continue
            lo, hi = x["fraction_range"]
            frac = f"{x['fraction_of_copy']:.2f}" + (f" ({lo:.2f}–{hi:.2f})" if hi > lo else "")
            cells += f" {x['median_ms']:.3f} | {frac} | {x['fraction_of_shader_copy']:.2f} |"
        print(f"| {m['op']} | {size(m['elements'])} | {m['tensors']} |{cells}")
    print()
    # The bar's ratios. Runs that time each pair of operations alternately carry them in
    # "ratios" (median and range over the pairs); older runs have only rows, and their
    # ratios come from the interleaved fractions (each time in units of the shader copy
    # run just before it).
    names = ("AdamW / copy", "unfused / fused", "many / 1", "3 groups / 1", "pooled / own", "split / own")
    print("| elements | " + " | ".join(f"run {k + 1}: " + " · ".join(names) for k in range(len(runs))) + " |")
    print("|---:|" + "---|" * len(runs))
    sizes = sorted({m["elements"] for m in runs[0]["measurements"] if m["op"] == "AdamW + clip (fused)"})
    paired_keys = ("fused_speedup_over_unfused", "many_over_one_tensor_time", "three_groups_over_one_group_time",
                   "pooled_over_own_slabs_time", "pooled_split_over_own_slabs_time")
    for n in sizes:
        cells = []
        for run, r in zip(runs, rows):
            fraction = next((x["fraction_of_copy"] for (o, e), x in r.items() if o == "AdamW + clip (fused)" and e == n), float("nan"))
            ratio = next((x for x in run["ratios"] if x["elements"] == n), None)
            if ratio is not None and isinstance(ratio.get("many_over_one_tensor_time"), dict):
                values = [f"{fraction:.2f}"] + [
                    f"{ratio[k]['median']:.2f} ({ratio[k]['min']:.2f}–{ratio[k]['max']:.2f})" for k in paired_keys]
                cells.append(" · ".join(values))
                continue
            def t(op, elements=n):
                x = next((m for (o, e), m in r.items() if o == op and abs(e - elements) <= 1000), None)
                return float("nan") if x is None else x["bytes"] / x["elements"] / (8 * x["fraction_of_shader_copy"])
            fused = t("AdamW + clip (fused)")
            many = [o for (o, e) in r if o.startswith("AdamW + clip (fused), ") and o.endswith(" tensors") and e == n]
            m = t(many[0]) if many else float("nan")
            g = t(many[0] + ", 3 groups") if many else float("nan")
            own = [o for (o, e) in r if o.endswith("tensors in own slabs")]
            pooled = [o for (o, e) in r if "pooled buffers (params + grads)" in o]
            split = [o for (o, e) in r if "pooled buffers (params, 3 for grads)" in o]
            o_ = t(own[0]) if own else float("nan")
            cells.append(" · ".join(f"{v:.2f}" for v in (
                fraction,
                t("AdamW + clip (unfused: norm, scale, update)") / fused,
                m / fused, g / m,
                (t(pooled[0]) / o_) if pooled else float("nan"),
                (t(split[0]) / o_) if split else float("nan"))))
        print(f"| {size(n)} | " + " | ".join(cells) + " |")
    print()
    for k, r in enumerate(runs):
        enc = ", ".join(f"{e['tensors']} tensors ({e['storage']}) {e['median_us']:.1f} µs" for e in r["encode"])
        print(f"Run {k + 1} host encode of a fused AdamW step: {enc}.")


if __name__ == "__main__":
    main()
