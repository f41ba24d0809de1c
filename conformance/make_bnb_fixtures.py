"""bitsandbytes' 4-bit quantization on the CPU, as references for lorakit's:
NF4 and FP4, block sizes 64 and 128, with and without double quantization, on
tensors with all-zero blocks, tails shorter than a block and values exactly
between two codes.

    conformance/.venv/bin/python conformance/make_bnb_fixtures.py [OUTPUT_ROOT]
"""
import json
import pathlib

import bitsandbytes
import bitsandbytes.functional as F
import torch
from safetensors.torch import save_file

from output_root import output_root

FOLDER = pathlib.Path("packages") / "core" / "fixtures" / "bnb"
MODELS = pathlib.Path("packages") / "models" / "fixtures"


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


def dequantize_in_place(model):
    import bitsandbytes as bnb

    for name, module in list(model.named_modules()):
        if isinstance(module, bnb.nn.Linear4bit):
            dense = torch.nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            dense.weight.data = F.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
            if module.bias is not None:
                dense.bias.data = module.bias.data.float()
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            setattr(parent, name.rsplit(".", 1)[1], dense)


def save_quantized_checkpoints(root):
    """Tiny llama, mistral, gemma2 and phi3 checkpoints quantized and saved by transformers + bitsandbytes, with their
    logits. (bitsandbytes' CPU matmul needs in_features of at least one block, so these are 128 wide.) gemma2 runs
    with transformers' eager attention, the only path that applies its soft caps; phi3 quantizes its fused
    qkv_proj and gate_up_proj."""
    import tempfile
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Gemma2Config, LlamaConfig, MistralConfig, Phi3Config

    shapes = dict(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=64, rms_norm_eps=1e-5, pad_token_id=1, eos_token_id=2, bos_token_id=0)
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(3, 256, (2, 12), generator=generator)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :3] = 0
    gemma2 = Gemma2Config(**shapes, head_dim=32, sliding_window=4, query_pre_attn_scalar=24, attn_logit_softcapping=2.0, final_logit_softcapping=3.0)
    phi3 = Phi3Config(**shapes, original_max_position_embeddings=16, rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                      "partial_rotary_factor": 0.5, "short_factor": [1.0] * 8, "long_factor": [2.0] * 8})
    cases = [("llama-nf4-dq", LlamaConfig(**shapes), "nf4", True), ("mistral-fp4", MistralConfig(**shapes, sliding_window=8), "fp4", False),
             ("gemma2-nf4-dq", gemma2, "nf4", True), ("phi3-nf4", phi3, "nf4", False)]
    for name, config, quant_type, double in cases:
        torch.manual_seed(0)
        attention = "eager" if name.startswith("gemma2") else None
        with tempfile.TemporaryDirectory() as float_dir:
            AutoModelForCausalLM.from_config(config).save_pretrained(float_dir)
            bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_use_double_quant=double, bnb_4bit_compute_dtype=torch.float32)
            model = AutoModelForCausalLM.from_pretrained(float_dir, quantization_config=bnb, device_map="cpu", dtype=torch.float32, attn_implementation=attention)
        out = root / MODELS / f"bnb-{name}"
        model.save_pretrained(out)
        # NOTE: bitsandbytes' CPU matmul is approximate (3e-3 off its own dequantized weights), so the
        # reference is the model with each 4-bit weight dequantized by bitsandbytes, in float32.
        dequantize_in_place(model)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
        save_file({"input_ids": ids, "attention_mask": mask, "logits": logits.contiguous()}, str(out / "reference.safetensors"))


def main():
    root = output_root(__doc__)
    out = root / FOLDER
    out.mkdir(parents=True, exist_ok=True)
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
    save_file(tensors, str(out / "quantization.safetensors"))
    save_quantized_checkpoints(root)
    (out / "cases.json").write_text(json.dumps({"cases": cases, "bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__}, indent=2) + "\n")
    print(len(cases), "cases written")


if __name__ == "__main__":
    main()
