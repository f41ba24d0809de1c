"""bitsandbytes' 4-bit quantization on the CPU, as references for lorakit's:
NF4 and FP4, block sizes 64 and 128, with and without double quantization, on
tensors with all-zero blocks, tails shorter than a block and values exactly
between two codes.

    conformance/.venv/bin/python conformance/make_bnb_fixtures.py
"""
import json
import pathlib

import bitsandbytes
import bitsandbytes.functional as F
import torch
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "packages" / "core" / "fixtures" / "bnb"


def tricky_input(quant_type, blocksize, generator):
    x = torch.randn(3 * blocksize * 40 + 37, generator=generator)  # a tail shorter than a block
    x[blocksize : 2 * blocksize] = 0  # an all-zero block
    code = F.get_4bit_type(quant_type, device="cpu")
    ordered = torch.sort(code).values
    midpoints = (ordered[:-1] + ordered[1:]) / 2
    block = 4 * blocksize
    x[block : block + blocksize] = 0
    x[block] = 1.0  # absmax 1: the rest of the block sits exactly between codes
    x[block + 1 : block + 1 + midpoints.numel()] = midpoints
    x[block + 20 : block + 20 + midpoints.numel()] = -midpoints
    x[-37:] = 0  # the tail is all zero
    x[-36:-20] = torch.randn(16, generator=generator) * 3
    return x


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    tensors = {"dynamic_map": F.create_dynamic_map()}
    cases = []
    for quant_type in ["nf4", "fp4"]:
        for blocksize in [64, 128]:
            for double in [False, True]:
                name = f"{quant_type}_{blocksize}_{'dq' if double else 'plain'}"
                x = tricky_input(quant_type, blocksize, generator).reshape(1, -1)
                packed, state = F.quantize_4bit(x, blocksize=blocksize, quant_type=quant_type, compress_statistics=double)
                tensors[f"{name}.input"] = x.reshape(-1).contiguous()
                tensors[f"{name}.packed"] = packed.reshape(-1).contiguous()
                tensors[f"{name}.absmax"] = state.absmax.contiguous()
                if double:
                    tensors[f"{name}.nested_absmax"] = state.state2.absmax.contiguous()
                    tensors[f"{name}.nested_code"] = state.state2.code.contiguous()
                    tensors[f"{name}.offset"] = state.offset.reshape(1).float()
                tensors[f"{name}.dequantized"] = F.dequantize_4bit(packed, state).reshape(-1).contiguous()
                cases.append(name)
    save_file(tensors, str(OUT / "quantization.safetensors"))
    (OUT / "cases.json").write_text(json.dumps({"cases": cases, "bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__}, indent=2) + "\n")
    print(len(cases), "cases written")


if __name__ == "__main__":
    main()
