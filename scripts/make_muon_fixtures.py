#!/usr/bin/env python3
"""Golden fixtures for the Muon reference, from PyTorch's torch.optim.Muon.

Writes fixtures/muon.json:

- "steps": three configurations (both nesterov settings, every adjust_lr_fn, custom
  Newton–Schulz coefficients and step counts), each twelve steps of one optimizer over
  matrices tall, wide, square, one row and one column; per step the gradients, the
  parameters after it and `momentum_buffer`. Each configuration runs twice: with
  torch.optim.Muon as shipped ("bf16": its Newton–Schulz iterates on a bfloat16 copy) and
  with that iteration patched to float32 ("f32"), which pins the reference's f32 path.
- "newton_schulz": `_zeropower_via_newtonschulz` of a few matrices, in both precisions.

src/reference/golden.rs holds the reference to these numbers, so CI needs no torch.

    python3 -m pip install torch && python3 scripts/make_muon_fixtures.py

Floats are written with Python's repr of the exact float32 value, so they round-trip.
"""
import json
import os

import torch
import torch.optim._muon as muon_module

STEPS = 12
SHAPES = [[8, 5], [5, 8], [6, 6], [1, 7], [7, 1], [3, 11]]
CONFIGS = [
    {"lr": 0.02},
    {"lr": 0.01, "weight_decay": 0.01, "momentum": 0.9, "nesterov": False,
     "ns_steps": 3, "adjust_lr_fn": "match_rms_adamw"},
    {"lr": 0.05, "weight_decay": 0.0, "momentum": 0.5, "ns_coefficients": [2.0, -1.5, 0.5],
     "eps": 1e-5, "adjust_lr_fn": "spectral_unclamped"},
]
ORIGINAL_NS = muon_module._zeropower_via_newtonschulz


def ns_f32(grad, ns_coefficients, ns_steps, eps):
    """PyTorch's iteration, line for line, on a float32 copy."""
    a, b, c = ns_coefficients
    ortho = grad.to(dtype=torch.float32, copy=True)
    if grad.size(0) > grad.size(1):
        ortho = ortho.T
    ortho.div_(ortho.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram = ortho @ ortho.T
        gram_update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        ortho = torch.addmm(ortho, gram_update, ortho, beta=a)
    if grad.size(0) > grad.size(1):
        ortho = ortho.T
    return ortho


def flat(t):
    return [float(x) for x in t.detach().float().reshape(-1).tolist()]


def steps_case(kwargs, precision, seed):
    muon_module._zeropower_via_newtonschulz = ORIGINAL_NS if precision == "bf16" else ns_f32
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s).float()) for s in SHAPES]
    torch_kwargs = dict(kwargs)
    if "ns_coefficients" in torch_kwargs:
        torch_kwargs["ns_coefficients"] = tuple(torch_kwargs["ns_coefficients"])
    opt = torch.optim.Muon(params, **torch_kwargs)
    out = {"kwargs": kwargs, "precision": precision, "shapes": SHAPES,
           "params": [flat(p) for p in params], "steps": []}
    for _ in range(STEPS):
        grads = [torch.randn(s).float() for s in SHAPES]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        out["steps"].append({
            "grads": [flat(g) for g in grads],
            "params": [flat(p) for p in params],
            "momentum": [flat(opt.state[p]["momentum_buffer"]) for p in params],
        })
    muon_module._zeropower_via_newtonschulz = ORIGINAL_NS
    return out


def ns_cases():
    torch.manual_seed(7)
    out = []
    for shape in [[4, 9], [9, 4], [16, 16], [1, 5], [33, 17]]:
        g = torch.randn(shape).float()
        for precision, fn in [("bf16", ORIGINAL_NS), ("f32", ns_f32)]:
            o = fn(g, (3.4445, -4.7750, 2.0315), 5, 1e-7)
            out.append({"shape": shape, "precision": precision, "input": flat(g),
                        "output": flat(o)})
    return out


def main():
    torch.set_num_threads(1)
    cases = []
    for i, kwargs in enumerate(CONFIGS):
        for precision in ["f32", "bf16"]:
            cases.append(steps_case(kwargs, precision, seed=100 + i))
    out = {"generator": "scripts/make_muon_fixtures.py", "torch": torch.__version__,
           "steps": cases, "newton_schulz": ns_cases()}
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "muon.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {len(cases)} cases of {STEPS} steps")


if __name__ == "__main__":
    main()
