#!/usr/bin/env python3
"""Convert clipstep optimizer checkpoints (safetensors, format version 4; 3 is read too) to and from a
PyTorch optimizer ``state_dict``.

    checkpoint_torch.py to-torch   IN.safetensors OUT.pt
    checkpoint_torch.py from-torch IN.pt OUT.safetensors --optimizer Adam --names w,b,emb --shapes "3x5,5,"

clipstep keeps states per tensor name under PyTorch's state names (``<name>.exp_avg``,
``<name>.exp_avg_sq``, ``<name>.max_exp_avg_sq``, ``<name>.momentum_buffer``,
``<name>.square_avg``, ``<name>.grad_avg``, ``<name>.sum``, ``<name>.exp_inf``,
``<name>.acc_delta``, ``<name>.ax``, ``<name>.prev``, ``<name>.step_size``,
``<name>.step``); PyTorch's scalar states that clipstep derives from the step count
(NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``) are computed here for ``to-torch`` and
dropped by ``from-torch``. PyTorch keys its state by
parameter index, in the order the parameters were given to the optimizer, which is the
order of the metadata's ``tensors`` list. Each clipstep parameter group becomes a
``param_group`` (its tensors' indices; clipstep's ``bias_correction`` has no PyTorch
counterpart and is dropped; from PyTorch it is true), and a state only some groups keep
(``max_exp_avg_sq`` of the amsgrad groups) is the state of their tensors only, as in
PyTorch. ``from-torch`` takes one ``param_group``. ``to-torch`` needs torch and safetensors; ``from-torch`` the same.
"""
import argparse
import json
import zlib

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save

# The config keys each optimizer has in both libraries.
KEYS = {
    "SGD": ["lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"],
    "Adam": ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"],
    "AdamW": ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"],
    "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"],
    "Adagrad": ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"],
    "Adamax": ["lr", "betas", "eps", "weight_decay", "maximize"],
    "Adadelta": ["lr", "rho", "eps", "weight_decay", "maximize"],
    "RAdam": ["lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"],
    "NAdam": ["lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay",
              "maximize"],
    "ASGD": ["lr", "lambd", "alpha", "t0", "weight_decay", "maximize"],
    "Rprop": ["lr", "etas", "step_sizes", "maximize"],
}
STATES = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "grad_avg", "momentum_buffer",
          "sum", "exp_inf", "acc_delta", "ax", "prev", "step_size"]
# Config values PyTorch keeps as tuples (JSON arrays in clipstep's metadata).
PAIRS = ["betas", "etas", "step_sizes"]


def scalar_states(optimizer, config, step):
    """PyTorch's per-tensor scalar states that clipstep derives from the step count instead
    of keeping: NAdam's mu_product (a running float32 product, as PyTorch computes it) and
    ASGD's eta and mu after `step` steps (float32 tensors of PyTorch's float64 values)."""
    if optimizer == "NAdam":
        product = torch.ones((), dtype=torch.float32)
        beta1, psi = config["betas"][0], config["momentum_decay"]
        for t in range(1, step + 1):
            product *= beta1 * (1.0 - 0.5 * (0.96 ** (t * psi)))
        return {"mu_product": product}
    if optimizer == "ASGD":
        lr, lambd, alpha, t0 = (config[k] for k in ("lr", "lambd", "alpha", "t0"))
        return {"eta": torch.tensor(lr / ((1 + lambd * lr * step) ** alpha), dtype=torch.float32),
                "mu": torch.tensor(1 / max(1, step - t0), dtype=torch.float32)}
    return {}


def to_torch(src, dst):
    with safe_open(src, framework="np") as f:
        meta = f.metadata()
        if meta.get("format") != "clipstep":
            raise SystemExit(f"{src}: not a clipstep checkpoint")
        tensors = json.loads(meta["tensors"])
        states = json.loads(meta["states"])
        # A state only some parameter groups keep: the tensors (indices) that have it.
        sparse = json.loads(meta.get("state_tensors", "{}"))
        step = int(meta["step"])
        config = json.loads(meta["config"])
        optimizer = meta["optimizer"]
        # One param_group per clipstep group (their tensors by index), or one of every tensor.
        index = {name: i for i, (name, _shape) in enumerate(tensors)}
        saved_groups = json.loads(meta["groups"]) if "groups" in meta else [
            {"tensors": list(index), "config": config}]
        config_of = {index[name]: g["config"] for g in saved_groups for name in g["tensors"]}
        state = {}
        for i, (name, _shape) in enumerate(tensors):
            entry = {s: torch.from_numpy(f.get_tensor(f"{name}.{s}").copy())
                     for s in states if s not in sparse or i in sparse[s]}
            if optimizer != "SGD":
                entry["step"] = torch.tensor(float(step))
            entry.update(scalar_states(optimizer, config_of[i], step))
            state[i] = entry
    param_groups = []
    for g in saved_groups:
        group = {k: g["config"][k] for k in KEYS[optimizer]}
        for k in PAIRS:
            if k in group:
                group[k] = tuple(group[k])
        group["params"] = [index[name] for name in g["tensors"]]
        param_groups.append(group)
    torch.save({"state": state, "param_groups": param_groups, "clipstep": {"optimizer": optimizer,
                "tensors": tensors, "step": step}}, dst)


def from_torch(src, dst, optimizer, names, shapes):
    sd = torch.load(src, weights_only=False)
    if len(sd["param_groups"]) != 1:
        raise SystemExit("clipstep checkpoints hold one parameter group")
    group = sd["param_groups"][0]
    config = {k: group[k] for k in KEYS[optimizer]}
    for k in PAIRS:
        if k in config:
            config[k] = list(config[k])
    if optimizer in ("Adam", "AdamW"):
        config["bias_correction"] = True
    params = group["params"]
    if len(params) != len(names):
        raise SystemExit(f"{len(params)} parameters in the state_dict, {len(names)} names given")
    steps = {int(sd["state"][p]["step"]) for p in params if "step" in sd["state"].get(p, {})}
    step = steps.pop() if steps else 0
    kept = [s for s in STATES if any(s in sd["state"].get(p, {}) for p in params)]
    entries = {}
    for s in kept:
        for p, name, shape in zip(params, names, shapes):
            values = sd["state"][p][s].detach().cpu().numpy().astype("<f4").reshape(shape)
            entries[f"{name}.{s}"] = values
    if optimizer != "SGD":
        for name in names:
            entries[f"{name}.step"] = np.array(step, dtype="<f4")
    meta = {
        "format": "clipstep",
        "version": "4",
        "optimizer": optimizer,
        "config": json.dumps(config, separators=(",", ":")),
        "step": str(step),
        "tensors": json.dumps([[n, list(s)] for n, s in zip(names, shapes)], separators=(",", ":")),
        "states": json.dumps(kept, separators=(",", ":")),
        "crc32": "00000000",
    }
    # Version 4's crc32 is the CRC-32 of the whole file read with its own digits as zeros.
    data = save(entries, metadata=meta)
    field = b'"crc32":"00000000"'
    if data.count(field) != 1:
        raise SystemExit("the header's crc32 field is not unique")
    crc = zlib.crc32(data)
    data = data.replace(field, f'"crc32":"{crc:08x}"'.encode())
    with open(dst, "wb") as out:
        out.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("to-torch")
    t.add_argument("src")
    t.add_argument("dst")
    f = sub.add_parser("from-torch")
    f.add_argument("src")
    f.add_argument("dst")
    f.add_argument("--optimizer", required=True, choices=sorted(KEYS))
    f.add_argument("--names", required=True, help="comma-separated tensor names, in parameter order")
    f.add_argument("--shapes", required=True, help='comma-separated shapes like "3x5,5," ("" for a scalar)')
    a = ap.parse_args()
    if a.cmd == "to-torch":
        to_torch(a.src, a.dst)
    else:
        names = a.names.split(",")
        shapes = [[int(d) for d in s.split("x")] if s else [] for s in a.shapes.split(",")]
        from_torch(a.src, a.dst, a.optimizer, names, shapes)


if __name__ == "__main__":
    main()
