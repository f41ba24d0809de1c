"""The decision points of bitsandbytes' 8-bit blockwise quantization on the CPU.

Its native kernel does not switch from code k to code k+1 at their midpoint
(the switch moves with the code's position, by up to 10% of the gap), so
lorakit keeps, as data, the smallest float32 that bitsandbytes maps to k+1,
found here by bisection over float32 values. Prints a TypeScript array.

    conformance/.venv/bin/python conformance/make_bnb_thresholds.py
"""
import numpy as np
import torch
import bitsandbytes.functional as F


def code_of(z):
    a = torch.tensor([z, 1.0], dtype=torch.float32)  # absmax 1: the value is its own normalized value
    return F.quantize_blockwise(a, blocksize=256)[0][0].item()


def as_int(x):
    return np.array([x], dtype=np.float32).view(np.int32)[0]


def as_float(i):
    return float(np.array([i], dtype=np.int32).view(np.float32)[0])


def ordered(x):  # float32 -> an integer that orders like the float
    i = int(as_int(x))
    return i if i >= 0 else -(i & 0x7FFFFFFF)


def from_ordered(o):
    return as_float(o if o >= 0 else (-o) | -0x80000000)


code = F.create_dynamic_map().numpy()
code[0] = -1.0
thresholds = []
for k in range(255):
    lo, hi = ordered(np.float32(code[k])), ordered(np.float32(code[k + 1]))
    while hi - lo > 1:  # invariant: code_of(lo) <= k < code_of(hi)
        mid = (lo + hi) // 2
        if code_of(from_ordered(mid)) <= k:
            lo = mid
        else:
            hi = mid
    thresholds.append(from_ordered(hi))
print("[" + ", ".join(repr(t) for t in thresholds) + "]")
