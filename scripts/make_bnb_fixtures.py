#!/usr/bin/env python3
"""Golden fixtures for the 8-bit AdamW reference, from bitsandbytes.

Writes fixtures/bitsandbytes.json: bitsandbytes' two dynamic quantization maps
(`create_dynamic_map(signed=True)` for the first moment, `signed=False` for the second, as
float32 bit patterns) and twelve steps of `bitsandbytes.optim.AdamW8bit` in three
configurations, run on the CPU in float32, with the parameters and the optimizer states
(8-bit codes and per-block absmax, or float32 moments for a tensor below `min_8bit_size`)
after every step. It also writes src/reference/dynamic_maps.rs, the maps as Rust constants.

Provenance. The update is bitsandbytes' own CPU optimizer step
(`bitsandbytes.backends.cpu.ops._optimizer_update_8bit_blockwise_cpu`, and
`_optimizer_update_32bit_cpu` for small tensors). Its requantization is bitsandbytes'
portable blockwise quantizer, the kernel it registers for the "default" device
(`bitsandbytes/backends/default/ops.py`: absmax per 256-element block, scaled by the
reciprocal of the absmax (the last, partial block divided by it), clamped to [-1, 1], and
rounded to the nearest code by the midpoints between codes, a midpoint itself rounding
down). The native CPU library's quantizer (`libbitsandbytes_cpu`, a table-driven search) is
not used: it does not return the nearest code for values near zero (for example -3.26e-6 of
the absmax goes to the code -2.1e-5 when -3.25e-6 is one), so it is patched out below.

    python3 -m pip install torch bitsandbytes && python3 scripts/make_bnb_fixtures.py

Floats are written with Python's repr of the exact float32 value (as a double), so they
round-trip bit for bit.
"""
import inspect
import json
import os

import numpy as np
import torch

import bitsandbytes
import bitsandbytes._ops as bnb_ops
import bitsandbytes.backends.cpu.ops as cpu_ops
import bitsandbytes.backends.default.ops as default_ops
import bitsandbytes.functional as F

torch.manual_seed(20261207)
STEPS = 12
ROOT = os.path.join(os.path.dirname(__file__), "..")


def default_kernel(name):
    """bitsandbytes' "default"-device kernel of `name`, re-read from its module (the
    module registers every kernel as `_`, so the function is captured at registration)."""
    captured = {}

    def capture(op, device):
        def register(fn):
            captured[(op, device)] = fn
            return fn

        return register

    real = bnb_ops.register_kernel
    bnb_ops.register_kernel = capture
    try:
        namespace = {"__name__": "default_ops_copy", "__package__": default_ops.__package__}
        exec(compile(inspect.getsource(default_ops), default_ops.__file__, "exec"), namespace)
    finally:
        bnb_ops.register_kernel = real
    return captured[(name, "default")]


QUANTIZE = default_kernel("bitsandbytes::quantize_blockwise")


def quantize_direct(values, code, absmax_out, out_uint8, blocksize):
    q, absmax = QUANTIZE(values, code, blocksize)
    out_uint8.copy_(q)
    absmax_out.copy_(absmax)


cpu_ops._quant_blockwise_fp32_direct = quantize_direct


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def bits(t):
    return [int(x) for x in t.numpy().view(np.uint32)]


def gradients(n):
    # Magnitudes over several decades, so blocks reach many codes of the map.
    return [torch.randn(n) * 10.0 ** torch.empty(n).uniform_(-3, 1) for _ in range(STEPS)]


CASES = [
    # 600 elements: two whole blocks and one of 88 (the partial block divides).
    (600, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, min_8bit_size=256)),
    (1000, dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.0, min_8bit_size=512)),
    # Below min_8bit_size: float32 moments, bitsandbytes' 32-bit step.
    (37, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, min_8bit_size=4096)),
]


def case(n, kwargs):
    p = torch.nn.Parameter(torch.randn(n))
    params = flat(p)
    bnb_kwargs = {k: v for k, v in kwargs.items()}
    opt = bitsandbytes.optim.AdamW8bit([p], **bnb_kwargs)
    steps = []
    for grad in gradients(n):
        p.grad = grad.clone()
        opt.step()
        s = opt.state[p]
        if s["state1"].dtype == torch.uint8:
            state = {
                "exp_avg_codes": [int(x) for x in s["state1"].tolist()],
                "exp_avg_absmax": flat(s["absmax1"]),
                "exp_avg_sq_codes": [int(x) for x in s["state2"].tolist()],
                "exp_avg_sq_absmax": flat(s["absmax2"]),
            }
        else:
            state = {"exp_avg": flat(s["state1"]), "exp_avg_sq": flat(s["state2"])}
        steps.append({"grad": flat(grad), "params": flat(p), "state": state})
    kwargs = dict(kwargs)
    kwargs["betas"] = list(kwargs["betas"])
    return {"optimizer": "AdamW8bit", "kwargs": kwargs, "params": params, "steps": steps}


def rust_maps(signed, unsigned):
    def table(name, doc, values):
        rows = [", ".join(f"0x{b:08x}" for b in values[k : k + 8]) for k in range(0, 256, 8)]
        body = "\n".join(f"    {r}," for r in rows)
        return f"{doc}\npub const {name}: [u32; 256] = [\n{body}\n];\n"

    return (
        "//! bitsandbytes' dynamic quantization maps as f32 bit patterns, written by\n"
        "//! `scripts/make_bnb_fixtures.py` from `bitsandbytes.functional.create_dynamic_map`\n"
        "//! (bitsandbytes 0.50.2); do not edit. `fixtures/bitsandbytes.json` holds the same.\n\n"
        + table(
            "SIGNED_BITS",
            "/// `create_dynamic_map(signed=True)`: the first moment's codes, ascending, from\n"
            "/// −0.99297 to 1; code 127 is 0.",
            signed,
        )
        + "\n"
        + table(
            "UNSIGNED_BITS",
            "/// `create_dynamic_map(signed=False)`: the second moment's codes, ascending, from\n"
            "/// 0 (code 0) to 1.",
            unsigned,
        )
    )


def main():
    signed = bits(F.create_dynamic_map(signed=True))
    unsigned = bits(F.create_dynamic_map(signed=False))
    out = {
        "bitsandbytes": bitsandbytes.__version__,
        "torch": torch.__version__,
        "maps": {"signed": signed, "unsigned": unsigned},
        "optimizers": [case(n, kwargs) for n, kwargs in CASES],
    }
    with open(os.path.join(ROOT, "fixtures", "bitsandbytes.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
    with open(os.path.join(ROOT, "src", "reference", "dynamic_maps.rs"), "w") as f:
        f.write(rust_maps(signed, unsigned))


if __name__ == "__main__":
    main()
