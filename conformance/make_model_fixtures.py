"""Reference cases for @lorakit/models, made with PyTorch + transformers.

Writes packages/models/fixtures/<case>/ (config.json, model.safetensors as
transformers saves it, in float32, or in bfloat16 for the cases named -bf16)
and reference.safetensors beside them, computed in float32 from the stored
weights:
  input_ids, attention_mask [2, 12] (row 1 left-padded by 3), logits [2, 12, V],
  loss (labels = input_ids with padding at -100), greedy [1, 5 + 20]
The families after the first four (qwen3, ...) get their norm weights drawn
around their start (1, or 0 for gemma's x·(1 + w)), so that every norm's weight
matters. gemma2 runs with transformers' eager attention (the only path that caps
its scores); phi3's greedy reference is generated without a cache (see longrope).
Also tiny-code-llama's loss on the inputs of make_peft_fixtures.py's io.safetensors
(tiny-code-llama-loss.safetensors).

    conformance/.venv/bin/python conformance/make_model_fixtures.py [OUTPUT_ROOT]
"""
import json
import pathlib

import torch
import transformers
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config,
                          SmolLM3Config, GraniteConfig, GemmaConfig, Gemma2Config, Gemma3TextConfig, Gemma3Config,
                          Gemma3ForConditionalGeneration, Phi3Config, Olmo2Config)

from make_peft_fixtures import qv_inputs
from output_root import ROOT, output_root

FOLDER = pathlib.Path("packages") / "models" / "fixtures"

LLAMA = dict(vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
             pad_token_id=1, eos_token_id=2, bos_token_id=0)

CASES = {
    "llama": LlamaConfig(**LLAMA),
    "llama-rope-linear": LlamaConfig(**LLAMA, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}),
    "llama-rope-llama3": LlamaConfig(**LLAMA, rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8,
                                                            "rope_theta": 10000.0}),
    "llama-bf16-tied": LlamaConfig(**{**LLAMA, "tie_word_embeddings": True}, attention_bias=True, mlp_bias=True),
    "mistral": MistralConfig(**LLAMA, sliding_window=4),
    "qwen2": Qwen2Config(**LLAMA),
    "gpt2": GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=4, pad_token_id=1, eos_token_id=2, bos_token_id=0),
}
# The same architectures stored in bfloat16.
CASES.update({f"{name}-bf16": CASES[name] for name in ["llama-rope-linear", "mistral", "qwen2", "gpt2"]})
# Families added to the Llama decoder as options, each with its feature exercised:
# qwen3's q_norm/k_norm with heads × head_dim (4 × 16) wider than hidden_size (32); smollm3 with
# no_rope_layer_interval 2, so that transformers makes layer 1 a NoPE layer (no_rope_layers [1, 0]), and
# weights 10 times larger than the others (initializer_range 0.2) so that positions visibly move attention;
# granite with its four scalars away from 1 and from llama's 1/sqrt(head_dim) = 0.354 (and weights as smollm3's);
# gemma with head_dim 16 (not hidden / heads = 8) and tied embeddings;
# gemma2 with layer 0 sliding (window 4 of 12 positions) and layer 1 full, query_pre_attn_scalar 24 (not head_dim),
# attention and final soft caps small enough to bend scores and logits (weights as smollm3's);
# gemma3_text likewise, with q/k norms, linear rope scaling on the full layer and its own base on the sliding one;
# phi3 with partial rotary (half of each head), longrope switching to long_factor past 16 positions (greedy
# generation reaches 25), a sliding window of 8 and tied embeddings (as Phi-4-mini);
# olmo2 with norms after each sublayer and q/k norms over 32 and 16 features.
WIDE = dict(initializer_range=0.2)
FAMILIES = {
    "qwen3": Qwen3Config(**LLAMA, head_dim=16),
    "smollm3": SmolLM3Config(**LLAMA, no_rope_layer_interval=2, initializer_range=0.2),
    "granite": GraniteConfig(**LLAMA, embedding_multiplier=4.0, residual_multiplier=0.6, attention_multiplier=0.9,
                             logits_scaling=2.5, initializer_range=0.2),
    "gemma": GemmaConfig(**{**LLAMA, "tie_word_embeddings": True}, head_dim=16),
    "gemma2": Gemma2Config(**{**LLAMA, "tie_word_embeddings": True}, head_dim=16, sliding_window=4, query_pre_attn_scalar=24,
                           attn_logit_softcapping=2.0, final_logit_softcapping=3.0, **WIDE),
    "gemma3_text": Gemma3TextConfig(**{**LLAMA, "tie_word_embeddings": True}, head_dim=16, sliding_window=4, sliding_window_pattern=2,
                                    query_pre_attn_scalar=24, final_logit_softcapping=3.0, **WIDE,
                                    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6},
                                                     "sliding_attention": {"rope_type": "default", "rope_theta": 500.0}}),
    "phi3": Phi3Config(**{**LLAMA, "tie_word_embeddings": True}, sliding_window=8, original_max_position_embeddings=16, **WIDE,
                       rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                        "short_factor": [1.0, 1.5], "long_factor": [2.0, 7.0]}),
    "olmo2": Olmo2Config(**LLAMA, **WIDE),
}
# gemma3: Gemma 3's multimodal checkpoint (Gemma3ForConditionalGeneration, which lorakit reads as its language
# model): gemma3_text's case as text_config, a one-layer SigLIP vision tower and the image token ids inside the
# vocabulary; tied, as Gemma 3 is. Its references are the text-only forward (no pixel values), whose head has no
# final soft cap (Gemma3ForConditionalGeneration leaves final_logit_softcapping out, unlike Gemma3ForCausalLM).
FAMILIES["gemma3"] = Gemma3Config(text_config=FAMILIES["gemma3_text"].to_dict(), mm_tokens_per_image=4, image_token_index=125,
                                  boi_token_index=126, eoi_token_index=127, **WIDE,
                                  vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, image_size=28, patch_size=14))
MULTIMODAL = {"gemma3": Gemma3ForConditionalGeneration}
GEMMA = {"gemma", "gemma2", "gemma3_text", "gemma3"}
CASES.update(FAMILIES)
CASES.update({f"{name}-bf16": config for name, config in FAMILIES.items() if name not in MULTIMODAL})
# qwen3 with use_sliding_window: layers from max_window_layers (1) on slide (window 4), the first stays full.
CASES["qwen3-sliding"] = Qwen3Config(**LLAMA, head_dim=16, use_sliding_window=True, sliding_window=4, max_window_layers=1)


def attention(family):
    """transformers' attention implementation for a family: eager for gemma2, whose attention soft cap the
    default sdpa path leaves out (its logits then differ from the eager, capped ones by 0.9 here)."""
    return "eager" if family == "gemma2" else None


def perturb_norms(model, center):
    """Norm weights drawn from N(center, 0.1) instead of transformers' constant: 1 (x·w), or 0 for gemma's x·(1 + w)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(center, 0.1)


def inputs(vocab):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :3] = 0
    ids[1, :3] = 1
    return ids, mask


def longrope(config):
    """Whether the rope switches to long factors past original_max_position_embeddings (phi3).

    Such a switch makes the cached keys stale; transformers 5.17's phi3 generate then drops the cache
    but still feeds only the newest token, so its cached greedy output is wrong past the switch. The
    reference is generate without a cache, every step a full forward: what lorakit's generate
    reproduces by running the whole sequence once at the switch and caching from there."""
    return (getattr(config, "rope_parameters", None) or {}).get("rope_type") == "longrope"


def reference(model, vocab):
    ids, mask = inputs(vocab)
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        greedy = model.generate(ids[:1, :5], attention_mask=torch.ones(1, 5, dtype=torch.long), max_new_tokens=20, do_sample=False,
                                use_cache=not longrope(model.config))
    return {"input_ids": ids, "attention_mask": mask, "logits": out.logits.float().contiguous(),
            "loss": out.loss.reshape(1).float(), "greedy": greedy}


def main():
    out = output_root(__doc__) / FOLDER
    torch.manual_seed(0)
    for name, config in CASES.items():
        torch.manual_seed(0)
        family = name.removesuffix("-bf16")
        model_class = MULTIMODAL.get(family)
        if model_class is not None:
            model = model_class._from_config(config, attn_implementation=attention(family)).eval()
        else:
            model = AutoModelForCausalLM.from_config(config, attn_implementation=attention(family)).eval()
        if family in FAMILIES:
            perturb_norms(model, 0.0 if family in GEMMA else 1.0)
        case = out / name
        if "bf16" in name:
            model.to(torch.bfloat16).save_pretrained(case, safe_serialization=True)
            model = AutoModelForCausalLM.from_pretrained(case, dtype=torch.float32, attn_implementation=attention(family)).eval()
        else:
            model.save_pretrained(case, safe_serialization=True)
        save_file(reference(model, config.get_text_config().vocab_size), str(case / "reference.safetensors"))
        print(name, "written")

    model = AutoModelForCausalLM.from_pretrained(ROOT / "examples" / "models" / "tiny-code-llama", dtype=torch.float32).eval()
    ids, mask = qv_inputs(model.config.vocab_size)
    with torch.no_grad():
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    save_file({"loss": loss.reshape(1)}, str(out / "tiny-code-llama-loss.safetensors"))
    (out / "VERSIONS.json").write_text(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__}, indent=2) + "\n")


if __name__ == "__main__":
    main()
