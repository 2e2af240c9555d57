#!/usr/bin/env python3
"""Resumes clipstep's checkpoints in PyTorch: for each DIR/<rule>.safetensors written by
`cargo run --release --example torch_resume -- DIR`, converts it with checkpoint_torch.py
to-torch, loads it into torch.optim.<rule> (foreach=False) over the parameters clipstep had
before its 8th step, takes that step with the same gradient, and compares with clipstep's
parameters after it. Exits 1 if any element differs by more than 4 ulp (or 1e-7).

    python3 -m pip install torch safetensors numpy
    python3 scripts/check_torch_resume.py out/torch_resume
"""
import glob
import json
import os
import subprocess
import sys

import torch

ULPS = 4


def main(directory):
    here = os.path.dirname(os.path.abspath(__file__))
    failed = 0
    for record_path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        name = os.path.splitext(os.path.basename(record_path))[0]
        src = os.path.join(directory, f"{name}.safetensors")
        dst = os.path.join(directory, f"{name}.pt")
        subprocess.run([sys.executable, os.path.join(here, "checkpoint_torch.py"), "to-torch", src, dst],
                       check=True)
        state = torch.load(dst, weights_only=False)
        del state["clipstep"]
        record = json.load(open(record_path))
        before, grad, after = (torch.tensor(record[k], dtype=torch.float32)
                               for k in ("before", "grad", "after"))
        w = torch.nn.Parameter(before[:15].reshape(3, 5).clone())
        b = torch.nn.Parameter(before[15:].clone())
        opt = getattr(torch.optim, name)([w, b], foreach=False)
        opt.load_state_dict(state)
        w.grad, b.grad = grad[:15].reshape(3, 5).clone(), grad[15:].clone()
        opt.step()
        got = torch.cat([w.detach().reshape(-1), b.detach()])
        err = (got - after).abs()
        ulp = torch.finfo(torch.float32).eps * torch.maximum(got.abs(), after.abs())
        bad = int(((err > ULPS * ulp) & (err > 1e-7)).sum())
        moved = float((after - before).abs().max())
        print(f"{name:9} max |PyTorch − clipstep| {float(err.max()):.3g} (the step moved up to {moved:.3g}):"
              f" {'ok' if bad == 0 else f'{bad} elements off'}")
        failed += bad > 0
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/torch_resume")
