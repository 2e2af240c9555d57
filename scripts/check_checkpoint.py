#!/usr/bin/env python3
"""Reads a clipstep checkpoint with Python's safetensors package and numpy (no torch) and
checks it against what clipstep says it saved.

    check_checkpoint.py DIR

DIR holds ``checkpoint.safetensors`` and ``expected.json`` (written by
``cargo run --example checkpoint_interop -- DIR``): the optimizer, the step, the tensors
with their shapes, and every state's values per tensor. Every entry must be present under
PyTorch's state names with the tensor's shape and the same float32 bits, with nothing else
in the file, and the metadata must say the same. Exit status 1 on any difference.
"""
import json
import sys
import zlib

import numpy as np
from safetensors import safe_open


def main(folder):
    expected = json.load(open(f"{folder}/expected.json"))
    problems = []
    with safe_open(f"{folder}/checkpoint.safetensors", framework="np") as f:
        meta = f.metadata()
        keys = set(f.keys())
        want_keys = set()
        for field in ("format", "optimizer", "step"):
            want = {"format": "clipstep"}.get(field, str(expected.get(field)))
            if meta.get(field) != want:
                problems.append(f"metadata {field}: {meta.get(field)!r}, expected {want!r}")
        if json.loads(meta["tensors"]) != [[t["name"], t["shape"]] for t in expected["tensors"]]:
            problems.append(f"metadata tensors: {meta['tensors']}")
        for state in expected["states"]:
            # A state some parameter groups keep is in the file for their tensors only.
            for t in (t for t in expected["tensors"] if state in t["states"]):
                key = f"{t['name']}.{state}"
                want_keys.add(key)
                if key not in keys:
                    problems.append(f"missing {key}")
                    continue
                got = f.get_tensor(key)
                want = np.array(t["states"][state], dtype="<f4").reshape(t["shape"])
                if got.dtype != np.float32 or list(got.shape) != t["shape"]:
                    problems.append(f"{key}: {got.dtype} {list(got.shape)}, expected float32 {t['shape']}")
                elif got.tobytes() != want.tobytes():
                    problems.append(f"{key}: values differ")
        if expected["torch_step"]:
            for t in expected["tensors"]:
                key = f"{t['name']}.step"
                want_keys.add(key)
                if key not in keys or float(f.get_tensor(key)) != float(expected["step"]):
                    problems.append(f"{key}: missing or not the step count")
        if keys != want_keys:
            problems.append(f"unexpected entries: {sorted(keys - want_keys)}")
        if meta.get("version") != "4":
            problems.append(f"version {meta.get('version')!r}, expected '4'")
    # Version 4's crc32: the CRC-32 of the whole file, its own 8 digits read as zeros.
    data = open(f"{folder}/checkpoint.safetensors", "rb").read()
    field = f'"crc32":"{meta.get("crc32")}"'.encode()
    if data.count(field) != 1:
        problems.append("the header's crc32 field is missing or not unique")
    else:
        crc = zlib.crc32(data.replace(field, b'"crc32":"00000000"'))
        if meta.get("crc32") != f"{crc:08x}":
            problems.append(f"crc32 {meta.get('crc32')}, computed over the whole file {crc:08x}")
    for p in problems:
        print("check_checkpoint:", p)
    n = len(want_keys)
    print(f"check_checkpoint: {n} entries of {len(expected['tensors'])} tensors read with "
          f"safetensors + numpy: {'ok' if not problems else 'FAILED'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
