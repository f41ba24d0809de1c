"""The `gguf` package (llama.cpp's own reader, from PyPI) reads what `lora export --format gguf` wrote
(write-lorakit-gguf.ts), and transformers and PEFT check the tensors:
- model.gguf (f32): every tensor equals transformers' weight under llama.cpp's name, exactly, q and k rows in
  Meta's interleaved layout; the metadata names the architecture and its hyperparameters;
- model.gguf (f16): every matrix equals transformers' weight rounded to float16 by numpy, norms float32;
- adapter.gguf: general.type adapter, adapter.lora.alpha a float32 16, and lora_a / lora_b equal PEFT's lora_A /
  lora_B exactly (lora_b's q/k rows interleaved);
- every architecture fixture's model.gguf (f32): each of transformers' weights under the name gguf's own tensor map
  gives it for the architecture, changed as llama.cpp's converter changes it (q/k interleaved for llama, granite
  and smollm3; gemma's norms + 1; GPT-2's Conv1D weights transposed), exactly; no other tensors but the rope's
  (llama3's rope_freqs from transformers' own llama3 frequencies, phi3's longrope factors from the config); a
  tied head left out (olmo2's copied); gemma3's PEFT adapter fixture as adapter.gguf, equal to PEFT's tensors."""
import pathlib
import sys

import numpy as np
import torch
from gguf import GGUFReader, MODEL_ARCH_NAMES, get_tensor_name_map
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from report import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASE = ROOT / "examples/models/tiny-code-llama"
FIXTURES = ROOT / "packages/models/fixtures"
GEMMA3_ADAPTER = ROOT / "packages/adapters/fixtures/gemma3-language-model-qv/adapter"
ARCHITECTURES = {"llama": "llama", "llama-rope-linear": "llama", "llama-rope-llama3": "llama", "llama-bf16-tied": "llama", "mistral": "llama",
                 "qwen2": "qwen2", "qwen3": "qwen3", "qwen3-sliding": "qwen3", "granite": "granite", "olmo2": "olmo2", "gemma": "gemma",
                 "gpt2": "gpt2", "phi3": "phi3", "gemma2": "gemma2", "gemma3_text": "gemma3", "gemma3": "gemma3", "smollm3": "smollm3"}
PERMUTED = {"llama", "granite", "smollm3"}  # llama.cpp's converter turns their q/k rows back to Meta's layout
GEMMA = {"gemma", "gemma2", "gemma3"}  # their RMSNorm multiplies by 1 + w; the converter writes w + 1
CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
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


def text_config(config):
    return getattr(config, "text_config", None) or config


def converted(name, w, arch, config):
    """A transformers weight as llama.cpp's converter writes it: (name under the converter's prefixes, values)."""
    name = name.replace("model.language_model.", "model.")  # gemma3's language model inside the vision checkpoint
    if arch in PERMUTED and (heads := heads_of(name, config)):
        w = interleaved(w, heads)
    if arch in GEMMA and name.endswith("norm.weight"):
        w = w + np.float32(1)
    if arch == "gpt2" and name.endswith(CONV1D):
        w = w.T
    return name, w


def rope_tensors(arch, config):
    """What llama.cpp reads of the rope as tensors: llama3's frequency divisors, phi3's longrope factor lists."""
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type") == "llama3":
        scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
        dim = scaled.shape[0] * 2
        plain = 1.0 / (rope["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        return {"rope_freqs.weight": (plain / scaled).numpy()}
    if rope.get("rope_type") == "longrope":
        return {"rope_factors_long.weight": np.float32(rope["long_factor"]), "rope_factors_short.weight": np.float32(rope["short_factor"])}
    return {}


def check_architecture(name, folder):
    arch = ARCHITECTURES[name]
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / name, dtype=torch.float32)
    config = text_config(model.config)
    tied = model.config.tie_word_embeddings
    names = get_tensor_name_map({v: k for k, v in MODEL_ARCH_NAMES.items()}[arch], config.num_hidden_layers)
    reader = GGUFReader(str(folder / name / "model.gguf"))
    written = tensors_of(reader)
    expected = {}
    for key, w in model.state_dict().items():
        if "vision_tower" in key or "multi_modal_projector" in key or (key == "lm_head.weight" and tied and arch != "olmo2"):
            continue
        key, w = converted(key, w.numpy(), arch, config)
        expected[names.get_name(key, try_suffixes=(".weight", ".bias"))] = w
    rope = rope_tensors(arch, config)
    differing = [k for k, w in expected.items() if k not in written or written[k].dtype != w.dtype or not np.array_equal(written[k], w)]
    differing += [k for k, w in rope.items() if k not in written or not np.allclose(written[k], w, rtol=1e-6, atol=0)]
    extra = sorted(set(written) - set(expected) - set(rope))
    block_count = field(reader, f"{arch}.block_count")
    ok = not differing and not extra and field(reader, "general.architecture") == arch and block_count == config.num_hidden_layers
    return ok, f"{name} as {arch}: {len(written)} tensors, {len(differing)} differ {differing[:3]}, {len(extra)} unexpected {extra[:3]}" + (f", rope {sorted(rope)}" if rope else "")


def check_gemma3_adapter(folder):
    reader = GGUFReader(str(folder / "gemma3/adapter.gguf"))
    written = tensors_of(reader)
    config = AutoConfig.from_pretrained(FIXTURES / "gemma3").text_config
    names = get_tensor_name_map({v: k for k, v in MODEL_ARCH_NAMES.items()}["gemma3"], config.num_hidden_layers)
    peft = {k: v.numpy() for k, v in load_file(str(GEMMA3_ADAPTER / "adapter_model.safetensors")).items()}
    differing = []
    for key, w in peft.items():
        module = key.removeprefix("base_model.model.").replace("model.language_model.", "model.").rsplit(".lora_", 1)[0]
        half = "lora_a" if ".lora_A." in key else "lora_b"
        got = written.get(f"{names.get_name(module + '.weight', try_suffixes=('.weight',))}.{half}")
        if got is None or not np.array_equal(got, w):
            differing.append(key)
    ok = not differing and len(written) == len(peft) and field(reader, "general.architecture") == "gemma3"
    return ok, f"gemma3 adapter.gguf: {len(written)} tensors, {len(differing)} differ from PEFT's {differing[:3]}"


def main(folder):
    folder = pathlib.Path(folder)
    results = [check_model(folder / "f32/model.gguf", "f32"), check_model(folder / "f16/model.gguf", "f16"), check_adapter(folder / "f32/adapter.gguf")]
    results += [check_architecture(name, folder / "architectures") for name in ARCHITECTURES]
    results.append(check_gemma3_adapter(folder / "architectures"))
    return report(results, "the gguf package reads `lora export --format gguf` output:")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
