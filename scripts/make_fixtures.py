#!/usr/bin/env python3
"""Golden fixtures for the CPU reference, from PyTorch.

Writes fixtures/pytorch.json: norms, clip_grad_norm_ / clip_grads_with_norm_ /
clip_grad_value_, a few steps of SGD, Adam, AdamW and RMSprop and twelve of Adagrad,
Adamax, Adadelta, RAdam, ASGD, Rprop and NAdam
(single-tensor loops, foreach=False, on CPU in float32) with the optimizer states after
every step, and AdamW
with three parameter groups, one left out of the global norm, and adaptive gradient
clipping with PyTorch's units (rows of `[out, in, ...]`: timm's `adaptive_clip_grad`,
written out here so the script needs torch only). The unit
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
    # Appended later, with longer trajectories (the cases above keep their numbers).
    ("Adagrad", torch.optim.Adagrad, dict(lr=1e-2), 12),
    ("Adagrad", torch.optim.Adagrad,
     dict(lr=5e-2, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1), 12),
    ("Adagrad", torch.optim.Adagrad, dict(lr=1e-2, maximize=True, eps=1e-6), 12),
    # Adamax, appended after Adagrad (the cases above keep their numbers).
    ("Adamax", torch.optim.Adamax, dict(lr=1e-2), 12),
    ("Adamax", torch.optim.Adamax,
     dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.01, maximize=True), 12),
    ("Adamax", torch.optim.Adamax, dict(lr=5e-2, eps=1e-3), 12),
    # Adadelta, appended after Adamax (the cases above keep their numbers).
    ("Adadelta", torch.optim.Adadelta, dict(), 12),
    ("Adadelta", torch.optim.Adadelta,
     dict(rho=0.8, weight_decay=0.01, maximize=True), 12),
    ("Adadelta", torch.optim.Adadelta, dict(lr=0.5, eps=1e-3), 12),
    # RAdam, ASGD and Rprop, appended after Adadelta (the cases above keep their numbers).
    # RAdam's rectification switches on at step 6 (ρt > 5) for every β2 here.
    ("RAdam", torch.optim.RAdam, dict(), 12),
    ("RAdam", torch.optim.RAdam,
     dict(lr=1e-2, betas=(0.8, 0.9), weight_decay=0.01, maximize=True), 12),
    ("RAdam", torch.optim.RAdam,
     dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True), 12),
    ("RAdam", torch.optim.RAdam, dict(lr=1e-2, betas=(0.3, 0.95), eps=1e-3), 12),
    # ASGD's eta and mu are scalars per tensor (step-derived; not in the fixture's states):
    # t0 = 3 starts the average at step 5.
    ("ASGD", torch.optim.ASGD, dict(), 12),
    ("ASGD", torch.optim.ASGD,
     dict(lr=5e-2, lambd=0.1, alpha=0.5, t0=3.0, weight_decay=0.01, maximize=True), 12),
    ("ASGD", torch.optim.ASGD, dict(lr=0.1, lambd=1e-2, t0=0.0), 12),
    ("Rprop", torch.optim.Rprop, dict(), 12),
    ("Rprop", torch.optim.Rprop,
     dict(lr=5e-3, etas=(0.3, 1.5), step_sizes=(1e-4, 2e-2), maximize=True), 12),
    ("Rprop", torch.optim.Rprop, dict(lr=0.1, step_sizes=(0.05, 0.2)), 12),
    # NAdam, appended after Rprop; its mu_product is a scalar per tensor (not in the states).
    ("NAdam", torch.optim.NAdam, dict(), 12),
    ("NAdam", torch.optim.NAdam,
     dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.01, momentum_decay=0.1, maximize=True), 12),
    ("NAdam", torch.optim.NAdam,
     dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True), 12),
    ("NAdam", torch.optim.NAdam, dict(lr=1e-2, betas=(0.3, 0.9), eps=1e-3), 12),
]


def optimizer_case(name, cls, kwargs, steps=STEPS):
    param = torch.nn.Parameter(torch.randn(NUMEL).float())
    opt = cls([param], foreach=False, **kwargs)
    case = {"optimizer": name, "kwargs": kwargs, "params": flat(param), "steps": []}
    for _ in range(steps):
        grad = (torch.randn(NUMEL) * torch.logspace(-2, 1, NUMEL)).float()
        param.grad = grad.clone()
        opt.step()
        state = opt.state[param]
        case["steps"].append({
            "grad": flat(grad),
            "params": flat(param),
            # Per-element states only: the scalars (step; ASGD's eta and mu) follow the step.
            "state": {k: flat(v) for k, v in state.items()
                      if v is not None and v.shape == param.shape},
        })
    return case


def groups_case():
    """AdamW over three tensors in three parameter groups, as a transformer recipe sets
    them up: a weight matrix (lr 1e-2, weight decay 0.1), a bias (lr 3e-2, no weight
    decay), and an embedding with its own betas that is left out of the global norm
    (Megatron's shared parameters) but clipped by it. Per step: the total norm over the
    first two groups, every gradient scaled by clip_grads_with_norm_, then the step."""
    torch.manual_seed(11)
    shapes = {"w": (4, 5), "b": (5,), "emb": (6, 3)}
    params = {n: torch.nn.Parameter(torch.randn(*s).float()) for n, s in shapes.items()}
    groups = [
        {"tensors": ["w"], "lr": 1e-2, "weight_decay": 0.1, "in_norm": True},
        {"tensors": ["b"], "lr": 3e-2, "weight_decay": 0.0, "in_norm": True},
        {"tensors": ["emb"], "lr": 1e-2, "weight_decay": 0.1, "betas": [0.8, 0.99], "in_norm": False},
    ]
    torch_groups = []
    for g in groups:
        pg = {"params": [params[n] for n in g["tensors"]], "lr": g["lr"], "weight_decay": g["weight_decay"]}
        if "betas" in g:
            pg["betas"] = tuple(g["betas"])
        torch_groups.append(pg)
    opt = torch.optim.AdamW(torch_groups, foreach=False)
    max_norm = 1.0
    case = {"groups": groups, "max_norm": max_norm, "shapes": {n: list(s) for n, s in shapes.items()},
            "params": {n: flat(p) for n, p in params.items()}, "steps": []}
    for _ in range(STEPS):
        grads = {n: (torch.randn(*s) * 3).float() for n, s in shapes.items()}
        for n, p in params.items():
            p.grad = grads[n].clone()
        counted = [params[n].grad for g in groups if g["in_norm"] for n in g["tensors"]]
        total = torch.nn.utils.get_total_norm(counted, norm_type=2.0)
        torch.nn.utils.clip_grads_with_norm_(list(params.values()), max_norm, total, foreach=False)
        opt.step()
        case["steps"].append({"grads": {n: flat(g) for n, g in grads.items()}, "total_norm": float(total),
                              "params": {n: flat(p) for n, p in params.items()}})
    return case


def agc_case():
    """timm.utils.agc.adaptive_clip_grad (clip_factor 0.05, eps 1e-3), on tensors of rank 1
    to 4, with gradients of mixed magnitudes so some rows are clipped and some are not."""
    torch.manual_seed(5)
    shapes = [[5], [4, 6], [3, 2, 2, 2], [6, 1]]
    params = [torch.randn(*s).float() for s in shapes]
    grads = [(torch.randn(*s) * torch.tensor([0.001, 0.01, 1.0])[torch.randint(0, 3, s)]).float()
             for s in shapes]

    def unitwise_norm(x):
        if x.ndim <= 1:
            return x.norm(2.0)
        return x.norm(2.0, dim=tuple(range(1, x.ndim)), keepdim=True)

    clipped = []
    for p, g in zip(params, grads):
        max_norm = unitwise_norm(p).clamp_(min=1e-3).mul_(0.05)
        grad_norm = unitwise_norm(g)
        clipped_grad = g * (max_norm / grad_norm.clamp(min=1e-6))
        clipped.append(torch.where(grad_norm < max_norm, g, clipped_grad))
    return {"clipping": 0.05, "eps": 1e-3, "shapes": shapes, "params": [flat(p) for p in params],
            "grads": [flat(g) for g in grads], "clipped": [flat(c) for c in clipped]}


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
        "groups": groups_case(),
        "adaptive_clip_grad": agc_case(),
    }
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pytorch.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
