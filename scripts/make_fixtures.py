#!/usr/bin/env python3
"""Golden fixtures for the CPU reference, from PyTorch.

Writes fixtures/pytorch.json: norms, clip_grad_norm_ / clip_grads_with_norm_ /
clip_grad_value_, and a few steps of SGD, Adam, AdamW and RMSprop (single-tensor loops,
foreach=False, on CPU in float32) with the optimizer states after every step. The unit
tests in src/reference/golden.rs hold the reference to these numbers, so CI needs no torch.

    python3 -m pip install torch && python3 scripts/make_fixtures.py

Floats are written with Python's repr of the exact float32 value (as a double), so they
round-trip bit for bit.
"""
import json
import math
import os

import torch

torch.manual_seed(20261125)
STEPS = 4
NUMEL = 37


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def norm_type_json(p):
    return "inf" if math.isinf(p) else p


def gradients():
    # Three tensors of awkward sizes with magnitudes spread over six decades.
    sizes = [7, 12, 5]
    out = []
    for i, n in enumerate(sizes):
        scale = torch.logspace(-3, 2, n) * (1 + i)
        out.append((torch.randn(n) * scale).float())
    return out


def norm_cases(grads):
    cases = []
    for p in [1.0, 2.0, math.inf, 3.0, 0.5]:
        total = torch.nn.utils.get_total_norm(grads, norm_type=p)
        per = [torch.linalg.vector_norm(g, ord=p) for g in grads]
        clipped = [g.clone() for g in grads]
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for prm, g in zip(params, clipped):
            prm.grad = g
        max_norm = 0.5 * float(total)
        clip_total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=p, foreach=False)
        cases.append({
            "norm_type": norm_type_json(p),
            "total": float(total),
            "per_tensor": [float(x) for x in per],
            "max_norm": max_norm,
            "clip_total": float(clip_total),
            "clipped": [flat(prm.grad) for prm in params],
        })
    return cases


def with_norm_case(grads):
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for prm, g in zip(params, grads):
        prm.grad = g.clone()
    total = 123.25
    torch.nn.utils.clip_grads_with_norm_(params, 2.0, torch.tensor(total), foreach=False)
    return {"max_norm": 2.0, "total_norm": total, "clipped": [flat(p.grad) for p in params]}


def value_case(grads):
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for prm, g in zip(params, grads):
        prm.grad = g.clone()
    torch.nn.utils.clip_grad_value_(params, 0.05, foreach=False)
    return {"clip_value": 0.05, "clipped": [flat(p.grad) for p in params]}


OPTIMIZERS = [
    ("SGD", torch.optim.SGD, dict(lr=0.1)),
    ("SGD", torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", torch.optim.SGD, dict(lr=0.1, weight_decay=0.05, maximize=True, momentum=0.5)),
    ("Adam", torch.optim.Adam, dict(lr=1e-2)),
    ("Adam", torch.optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.01)),
    ("Adam", torch.optim.Adam, dict(lr=1e-2, maximize=True, weight_decay=0.01)),
    ("Adam", torch.optim.Adam, dict(lr=1e-2, betas=(0.3, 0.6), amsgrad=True)),
    ("AdamW", torch.optim.AdamW, dict(lr=1e-2)),
    ("AdamW", torch.optim.AdamW, dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
    ("RMSprop", torch.optim.RMSprop, dict(lr=1e-2)),
    ("RMSprop", torch.optim.RMSprop, dict(lr=1e-2, centered=True, momentum=0.5, weight_decay=0.01)),
    ("RMSprop", torch.optim.RMSprop, dict(lr=1e-2, momentum=0.9)),
    ("RMSprop", torch.optim.RMSprop, dict(lr=1e-2, alpha=0.3, maximize=True, centered=True)),
]


def optimizer_case(name, cls, kwargs):
    param = torch.nn.Parameter(torch.randn(NUMEL).float())
    opt = cls([param], foreach=False, **kwargs)
    case = {"optimizer": name, "kwargs": kwargs, "params": flat(param), "steps": []}
    for _ in range(STEPS):
        grad = (torch.randn(NUMEL) * torch.logspace(-2, 1, NUMEL)).float()
        param.grad = grad.clone()
        opt.step()
        state = opt.state[param]
        case["steps"].append({
            "grad": flat(grad),
            "params": flat(param),
            "state": {k: flat(v) for k, v in state.items() if k != "step" and v is not None},
        })
    return case


def main():
    grads = gradients()
    out = {
        "generator": "scripts/make_fixtures.py",
        "torch": torch.__version__,
        "grads": [flat(g) for g in grads],
        "norms": norm_cases(grads),
        "clip_grads_with_norm": with_norm_case(grads),
        "clip_grad_value": value_case(grads),
        "optimizers": [optimizer_case(*o) for o in OPTIMIZERS],
    }
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pytorch.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
