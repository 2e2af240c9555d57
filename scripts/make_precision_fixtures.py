#!/usr/bin/env python3
"""Golden fixtures for clipstep's 16-bit conversions and dynamic loss scale, from PyTorch.

Writes fixtures/precision.json:

- "conversions": f32 bit patterns (ties, subnormals, f16's overflow edge, NaNs with
  payloads, ±Inf, ±0, and random patterns over every exponent) with the bits PyTorch gives
  them as `x.to(torch.bfloat16)` and `x.to(torch.float16)` on CPU;
- "scalers": scripted sequences of found-inf flags, each fed to `torch._amp_update_scale_`
  (what `torch.amp.GradScaler.update()` runs) from a starting scale, with the scale and
  growth tracker after every update.

src/reference/golden.rs holds the reference (`f32_to_bf16`, `f32_to_f16`, `update_scale`)
to these bits, so CI needs no torch.

    python3 -m pip install torch && python3 scripts/make_precision_fixtures.py
"""
import json
import os
import random
import struct

import torch

random.seed(20261126)


def f32_of(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def conversion_patterns():
    pats = [
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # ±0, ±Inf
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF, 0x7FA12345,  # NaNs
        0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001,  # bf16 ties and neighbours
        0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0xFF7FFFFF,  # bf16 overflow edge
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0xC77FF000,  # f16 65504, 65520
        0x38800000, 0x387FFFFF, 0x387FE000, 0x38000000,  # f16 normal/subnormal edge
        0x33000000, 0x33000001, 0x32FFFFFF, 0x33C00000, 0xB3400000,  # 2^-25 ties
        0x00000001, 0x00400000, 0x807FFFFF,  # f32 subnormals
        0x3F800000, 0x3F801000, 0x3F802000, 0x3F803000,  # f16 ties at 1
    ]
    for _ in range(400):
        pats.append(random.getrandbits(32))
    for e in range(0, 256):  # every exponent, random mantissas and signs
        pats.append((random.getrandbits(1) << 31) | (e << 23) | random.getrandbits(23))
    return pats


def conversions():
    pats = conversion_patterns()
    x = torch.tensor(pats, dtype=torch.int64).to(torch.int32).view(torch.float32)
    bf16 = x.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF
    f16 = x.to(torch.float16).view(torch.int16).to(torch.int64) & 0xFFFF
    return [
        {"f32": p, "bf16": int(b), "f16": int(h)}
        for p, b, h in zip(pats, bf16.tolist(), f16.tolist())
    ]


def scaler(init_scale, growth_factor, backoff_factor, growth_interval, found):
    scale = torch.tensor([init_scale], dtype=torch.float32)
    tracker = torch.tensor([0], dtype=torch.int32)
    after = []
    for inf in found:
        found_inf = torch.tensor([1.0 if inf else 0.0])
        torch._amp_update_scale_(scale, tracker, found_inf, growth_factor,
                                 backoff_factor, growth_interval)
        after.append({"scale": float(scale.item()), "growth_tracker": int(tracker.item())})
    return {
        "init_scale": init_scale,
        "growth_factor": growth_factor,
        "backoff_factor": backoff_factor,
        "growth_interval": growth_interval,
        "found_inf": found,
        "after": after,
    }


def scalers():
    pattern = [False] * 5 + [True] + [False] * 2 + [True, True] + [False] * 9 + [True]
    rand = [random.random() < 0.2 for _ in range(60)]
    return [
        scaler(65536.0, 2.0, 0.5, 3, pattern),
        scaler(65536.0, 2.0, 0.5, 2000, [True] * 40),  # backs off to the f32 subnormals
        scaler(2.0**126, 2.0, 0.5, 2, [False] * 8),  # growth stops short of +Inf
        scaler(1000.0, 3.0, 0.25, 4, rand),  # factors exact in f32
        scaler(1.5, 1.5, 0.75, 1, rand),
    ]


def main():
    out = {"torch": torch.__version__, "conversions": conversions(), "scalers": scalers()}
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "precision.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(out['conversions'])} conversions, {len(out['scalers'])} scalers")


if __name__ == "__main__":
    main()
