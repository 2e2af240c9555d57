#!/usr/bin/env python3
"""Golden fixtures for the CPU reference, from Optax (where the rule is Optax's, not
PyTorch's).

Writes fixtures/optax.json: twelve steps of optax.lion in three configurations, on CPU in
float32, with the parameters and the momentum (`mu`, clipstep's `exp_avg`) after every
step; and twelve steps of optax.sgd behind optax.zero_nans (gradients with NaNs) and
behind MultiSteps(should_skip_update_fn=skip_large_updates) (gradients whose norm crosses
the bound), with the parameters after every step; optax.clip_by_block_rms over tensors
whose RMS lies on both sides of the threshold; and twelve steps of optax.lars and
optax.lamb over three tensors (each its own trust ratio), with parameters and states; and
optax.adaptive_grad_clip over tensors of rank 0 to 4 (Optax's units: columns of `[in, out]`,
the last axis of `HWIO`). The unit tests in src/reference/golden.rs hold the reference to these numbers, so CI
needs no JAX.

    python3 -m pip install "jax[cpu]" optax numpy && python3 scripts/make_optax_fixtures.py

Each step runs op by op (no jit): XLA then compiles every primitive alone, so no two
operations are fused into one rounding. Floats are written with Python's repr of the exact
float32 value, so they round-trip bit for bit.
"""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

STEPS = 12
NUMEL = 37

LION = [
    dict(learning_rate=1e-2),
    dict(learning_rate=3e-3, b1=0.95, b2=0.98, weight_decay=0.1),
    dict(learning_rate=1e-2, weight_decay=0.0),
]


def flat(x):
    """Floats as JSON numbers; NaN (not JSON) as null."""
    return [None if np.isnan(v) else float(v) for v in np.asarray(x, dtype=np.float32).reshape(-1)]


def lion_case(rng, kwargs):
    params = jnp.asarray(rng.standard_normal(NUMEL), dtype=jnp.float32)
    opt = optax.lion(**kwargs)
    state = opt.init(params)
    case = {"optimizer": "Lion", "kwargs": kwargs, "params": flat(params), "steps": []}
    scale = np.logspace(-2, 1, NUMEL)
    for step in range(STEPS):
        grad = (rng.standard_normal(NUMEL) * scale).astype(np.float32)
        if step == 0:
            grad[5] = 0.0  # sign(0) = 0: a zero gradient while the momentum is still zero
        updates, state = opt.update(jnp.asarray(grad), state, params)
        params = optax.apply_updates(params, updates)
        case["steps"].append({
            "grad": flat(grad),
            "params": flat(params),
            "state": {"exp_avg": flat(state[0].mu)},
        })
    return case


def sgd_case(rng, name, opt, grads):
    """`opt` (an optax.sgd behind a policy) over `grads`, from random parameters."""
    params = jnp.asarray(rng.standard_normal(NUMEL), dtype=jnp.float32)
    state = opt.init(params)
    case = {"policy": name, "lr": SGD_LR, "params": flat(params), "steps": []}
    for grad in grads:
        updates, state = opt.update(jnp.asarray(grad), state, params)
        params = optax.apply_updates(params, updates)
        case["steps"].append({"grad": flat(grad), "params": flat(params)})
    return case


SGD_LR = 0.1
SKIP_ABOVE = 2.0


def policy_cases(rng):
    nan_grads = []
    for step in range(STEPS):
        g = rng.standard_normal(NUMEL).astype(np.float32)
        for k in rng.choice(NUMEL, size=step % 4, replace=False):
            g[k] = np.nan
        nan_grads.append(g)
    zero_nans = optax.chain(optax.zero_nans(), optax.sgd(SGD_LR))
    large_grads = []
    for step in range(STEPS):
        g = rng.standard_normal(NUMEL).astype(np.float32)
        norm = [1.0, 3.0, 1.9, 2.5, 0.5, 10.0][step % 6]
        large_grads.append((g / np.linalg.norm(g) * norm).astype(np.float32))
    skip = functools.partial(optax.skip_large_updates, max_squared_norm=SKIP_ABOVE**2)
    skip_large = optax.MultiSteps(optax.sgd(SGD_LR), every_k_schedule=1,
                                  should_skip_update_fn=skip)
    return [
        sgd_case(rng, "zero_nans", zero_nans, nan_grads),
        dict(sgd_case(rng, "skip_large_updates", skip_large, large_grads),
             skip_above=SKIP_ABOVE),
    ]


def block_rms_case(rng):
    threshold = 0.5
    sizes = [7, 12, 5, 64, 1, 300]
    scales = [0.1, 2.0, 0.49, 5.0, 0.7, 1.0]
    grads = [(rng.standard_normal(n) * s).astype(np.float32) for n, s in zip(sizes, scales)]
    clip = optax.clip_by_block_rms(threshold)
    clipped, _ = clip.update([jnp.asarray(g) for g in grads], clip.init(None))
    return {"threshold": threshold, "grads": [flat(g) for g in grads],
            "clipped": [flat(c) for c in clipped]}


TRUST = [
    ("LARS", optax.lars, dict(learning_rate=0.1)),
    ("LARS", optax.lars, dict(learning_rate=0.5, weight_decay=1e-3, trust_coefficient=0.02,
                              eps=1e-6, nesterov=True)),
    ("LAMB", optax.lamb, dict(learning_rate=1e-2)),
    ("LAMB", optax.lamb, dict(learning_rate=1e-2, b1=0.8, b2=0.99, eps_root=1e-8,
                              weight_decay=0.01)),
]


def trust_case(rng, name, make, kwargs):
    shapes = [17, 8, 23]
    params = [jnp.asarray(rng.standard_normal(n), dtype=jnp.float32) for n in shapes]
    opt = make(**kwargs)
    state = opt.init(params)
    case = {"optimizer": name, "kwargs": kwargs, "shapes": shapes,
            "params": [flat(p) for p in params], "steps": []}
    for step in range(STEPS):
        grads = [(rng.standard_normal(n) * 10 ** (i - 1)).astype(np.float32)
                 for i, n in enumerate(shapes)]
        updates, state = opt.update([jnp.asarray(g) for g in grads], state, params)
        params = optax.apply_updates(params, updates)
        if name == "LARS":
            states = {"momentum_buffer": [flat(t) for t in state[-1].trace]}
        else:
            states = {"exp_avg": [flat(t) for t in state[0].mu],
                      "exp_avg_sq": [flat(t) for t in state[0].nu]}
        case["steps"].append({"grads": [flat(g) for g in grads],
                              "params": [flat(p) for p in params], "state": states})
    return case


def agc_case(rng):
    shapes = [[], [5], [1, 7], [4, 6], [2, 3, 4], [2, 2, 3, 5]]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    # Gradients of mixed magnitudes, so that some units are clipped and some are not.
    grads = [(rng.standard_normal(s) * rng.choice([0.001, 0.01, 1.0], size=s)).astype(np.float32)
             for s in shapes]
    clip = optax.adaptive_grad_clip(0.05, eps=1e-3)
    clipped, _ = clip.update([jnp.asarray(g) for g in grads], clip.init(None),
                             [jnp.asarray(p) for p in params])
    return {"clipping": 0.05, "eps": 1e-3, "shapes": shapes,
            "params": [flat(p) for p in params], "grads": [flat(g) for g in grads],
            "clipped": [flat(c) for c in clipped]}


def main():
    rng = np.random.default_rng(20261125)
    out = {
        "generator": "scripts/make_optax_fixtures.py",
        "optax": optax.__version__,
        "jax": jax.__version__,
        "optimizers": [lion_case(rng, kw) for kw in LION],
        "policies": policy_cases(rng),
        "clip_by_block_rms": block_rms_case(rng),
        "trust": [trust_case(rng, *t) for t in TRUST],
        "adaptive_grad_clip": agc_case(rng),
    }
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "optax.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
