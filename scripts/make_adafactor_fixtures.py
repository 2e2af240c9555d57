#!/usr/bin/env python3
"""Golden fixtures for the Adafactor reference, from PyTorch's torch.optim.Adafactor.

Writes fixtures/adafactor.json: three configurations, each twelve steps
(`_single_tensor_adafactor`, foreach=False, on CPU in float32) of one optimizer over
tensors of every kind Adafactor treats differently: matrices (factored: `row_var`,
`col_var`), a batch of matrices (factored per matrix), a one-row matrix, a vector and a
scalar (`variance` whole). Per step: the gradients, the parameters after it and every
state. src/reference/golden.rs holds the reference to these numbers, so CI needs no torch.

    python3 -m pip install torch && python3 scripts/make_adafactor_fixtures.py

Floats are written with Python's repr of the exact float32 value (as a double), so they
round-trip bit for bit.
"""
import json
import os

import torch

STEPS = 12
SHAPES = [[5, 7], [2, 3, 4], [6], [1, 9], []]
CONFIGS = [
    {},
    {"lr": 5e-2, "beta2_decay": -0.5, "eps": [1e-3, 1e-3], "d": 1.5, "weight_decay": 0.01,
     "maximize": True},
    # lr = 0.5: the relative step min(lr, 1/sqrt(t)) switches to 1/sqrt(t) at step 5.
    {"lr": 0.5, "eps": [None, 0.0], "weight_decay": 0.1},
]


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def case(kwargs, seed):
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s).float()) for s in SHAPES]
    torch_kwargs = dict(kwargs)
    if "eps" in torch_kwargs:
        torch_kwargs["eps"] = tuple(torch_kwargs["eps"])
    opt = torch.optim.Adafactor(params, foreach=False, **torch_kwargs)
    out = {"kwargs": kwargs, "shapes": SHAPES, "params": [flat(p) for p in params], "steps": []}
    for _ in range(STEPS):
        # Magnitudes over four decades, so rows and columns differ.
        grads = [(torch.randn(s) * torch.logspace(-2, 2, max(p.numel(), 1))
                  .reshape(s)).float() for s, p in zip(SHAPES, params)]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        states = []
        for p in params:
            st = opt.state[p]
            states.append({k: flat(v) for k, v in st.items() if k != "step" and v is not None})
        out["steps"].append({"grads": [flat(g) for g in grads],
                             "params": [flat(p) for p in params], "states": states})
    return out


def main():
    out = {
        "generator": "scripts/make_adafactor_fixtures.py",
        "torch": torch.__version__,
        "cases": [case(c, 31 + i) for i, c in enumerate(CONFIGS)],
    }
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "adafactor.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
