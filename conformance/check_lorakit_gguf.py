"""The `gguf` package (llama.cpp's own reader, from PyPI) reads what `lora export --format gguf` wrote
(write-lorakit-gguf.ts), and transformers and PEFT check the tensors:
- model.gguf (f32): every tensor equals transformers' weight under llama.cpp's name, exactly, q and k rows in
  Meta's interleaved layout; the metadata names the architecture and its hyperparameters;
- model.gguf (f16): every matrix equals transformers' weight rounded to float16 by numpy, norms float32;
- adapter.gguf: general.type adapter, adapter.lora.alpha a float32 16, and lora_a / lora_b equal PEFT's lora_A /
  lora_B exactly (lora_b's q/k rows interleaved)."""
import pathlib
import sys

import numpy as np
import torch
from gguf import GGUFReader
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

from report import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASE = ROOT / "examples/models/tiny-code-llama"
ADAPTER = ROOT / "packages/adapters/peft-fixtures/codellama_qv_r8/adapter"
PARTS = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
         "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
         "self_attn.o_proj.weight": "attn_output.weight", "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
         "mlp.down_proj.weight": "ffn_down.weight"}


def gguf_name(name):
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    if name in top:
        return top[name]
    _, _, layer, rest = name.split(".", 3)
    return f"blk.{layer}.{PARTS[rest]}"


def interleaved(w, heads):
    """Hugging Face's rotate-half rows back to Meta's layout, as llama.cpp's converter permutes them."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def heads_of(name, config):
    if ".q_proj." in name:
        return config.num_attention_heads
    if ".k_proj." in name:
        return config.num_key_value_heads
    return None


def field(reader, key):
    f = reader.fields[key]
    value = f.parts[f.data[0]]
    return bytes(value).decode() if f.types[0].name == "STRING" else value[0].item()


def tensors_of(reader):
    return {t.name: np.asarray(t.data).reshape([int(d) for d in reversed(t.shape)]) for t in reader.tensors}


def check_model(path, dtype):
    config = AutoConfig.from_pretrained(BASE)
    weights = {k: v.numpy() for k, v in AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32).state_dict().items() if k != "lm_head.weight"}
    reader = GGUFReader(str(path))
    written = tensors_of(reader)
    differing = []
    for name, w in weights.items():
        heads = heads_of(name, config)
        expected = interleaved(w, heads) if heads else w
        if dtype == "f16" and expected.ndim == 2:
            expected = expected.astype(np.float16)
        got = written.get(gguf_name(name))
        if got is None or got.dtype != expected.dtype or not np.array_equal(got, expected):
            differing.append(name)
    meta = {k: field(reader, k) for k in ["general.architecture", "llama.block_count", "llama.attention.head_count_kv", "llama.rope.freq_base", "tokenizer.ggml.model"]}
    ok = not differing and len(written) == len(weights) and meta == {"general.architecture": "llama", "llama.block_count": 6, "llama.attention.head_count_kv": 2, "llama.rope.freq_base": 10000.0, "tokenizer.ggml.model": "gpt2"}
    return ok, f"model.gguf ({dtype}): {len(written)} tensors, {len(differing)} differ from transformers' {differing[:3]}; metadata {meta}"


def check_adapter(path):
    config = AutoConfig.from_pretrained(BASE)
    reader = GGUFReader(str(path))
    written = tensors_of(reader)
    peft = {k: v.numpy() for k, v in load_file(str(ADAPTER / "adapter_model.safetensors")).items()}
    differing = []
    for key, w in peft.items():
        module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight").removesuffix(".lora_B.weight")
        half = "lora_a" if key.endswith("lora_A.weight") else "lora_b"
        heads = heads_of(module + ".", config) if half == "lora_b" else None
        expected = interleaved(w, heads) if heads else w
        got = written.get(f"{gguf_name(module + '.weight')}.{half}")
        if got is None or not np.array_equal(got, expected):
            differing.append(key)
    alpha = reader.fields["adapter.lora.alpha"]
    meta = (field(reader, "general.type"), field(reader, "adapter.type"), alpha.types[0].name, float(field(reader, "adapter.lora.alpha")))
    ok = not differing and len(written) == len(peft) and meta == ("adapter", "lora", "FLOAT32", 16.0)
    return ok, f"adapter.gguf: {len(written)} tensors, {len(differing)} differ from PEFT's {differing[:3]}; type, adapter type, alpha {meta}"


def main(folder):
    folder = pathlib.Path(folder)
    results = [check_model(folder / "f32/model.gguf", "f32"), check_model(folder / "f16/model.gguf", "f16"), check_adapter(folder / "f32/adapter.gguf")]
    return report(results, "the gguf package reads `lora export --format gguf` output:")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
