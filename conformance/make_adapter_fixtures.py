"""PEFT adapters across LoraConfig's options, for @lorakit/adapters' tests.

For each case, on a tiny checkpoint from packages/models/fixtures: PEFT's
get_peft_model with random A and B (B with std 0.05, as the shared fixtures),
the adapter saved by PEFT, and reference.safetensors with the logits of the
adapted model, the gradients of every adapter parameter for the causal-LM loss
(in-memory names), a greedy continuation, a three-step AdamW trajectory from
the saved adapter (losses and final trainable parameters), and the logits
after merge_and_unload (with, for the all-linear cases of the families added
to the Llama decoder and the embedding cases, the weights merge_and_unload
changes). Embedding factors (lora_embedding_A/B) are PEFT's init_lora_weights=False
draws, N(0, 1), with B redrawn at std 0.05 as lora_B is.

    conformance/.venv/bin/python conformance/make_adapter_fixtures.py [OUTPUT_ROOT]

The base checkpoints come from the repository's packages/models/fixtures (the
committed ones, which the tests pair with these adapters).
"""
import json
import os
import pathlib

import peft
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from output_root import ROOT, output_root

# Relative to the repository's root (main() goes there): PEFT records the base model's path in each adapter.
MODELS = pathlib.Path("packages") / "models" / "fixtures"
FOLDER = pathlib.Path("packages") / "adapters" / "fixtures"

CASES = {
    "list-layers-to-transform": ("llama-rope-linear", dict(target_modules=["q_proj", "v_proj", "down_proj"], layers_to_transform=[1], layers_pattern="layers")),
    "regex-targets": ("llama-rope-linear", dict(target_modules=r".*\.(k_proj|o_proj)")),
    "all-linear-exclude": ("qwen2", dict(target_modules="all-linear", exclude_modules=["down_proj"])),
    "rslora-rank-alpha-patterns": ("mistral", dict(target_modules=["q_proj", "v_proj", "up_proj"], use_rslora=True, rank_pattern={"q_proj": 2}, alpha_pattern={"v_proj": 32})),
    "dora": ("llama-bf16-tied", dict(target_modules=["q_proj", "v_proj", "gate_proj"], use_dora=True)),
    "gpt2-fan-in-fan-out-lora-only-bias": ("gpt2", dict(target_modules=["c_attn", "c_proj"], fan_in_fan_out=True, bias="lora_only")),
    "gpt2-bias-all": ("gpt2", dict(target_modules=["c_fc"], fan_in_fan_out=True, bias="all")),
    "modules-to-save": ("llama-rope-linear", dict(target_modules=["q_proj"], modules_to_save=["lm_head"])),
    "gaussian-init": ("mistral", dict(target_modules=["k_proj"], init_lora_weights="gaussian")),
    "qwen3-all-linear": ("qwen3", dict(target_modules="all-linear")),
    "smollm3-all-linear": ("smollm3", dict(target_modules="all-linear")),
    "granite-all-linear": ("granite", dict(target_modules="all-linear")),
    "gemma-all-linear": ("gemma", dict(target_modules="all-linear")),
    "gemma2-all-linear": ("gemma2", dict(target_modules="all-linear")),
    "gemma3_text-all-linear": ("gemma3_text", dict(target_modules="all-linear")),
    # phi3's fused qkv_proj and gate_up_proj are the Linears PEFT wraps
    "phi3-all-linear": ("phi3", dict(target_modules="all-linear")),
    "olmo2-all-linear": ("olmo2", dict(target_modules="all-linear")),
    # LoRA on the token embedding (PEFT's lora.Embedding: lora_embedding_A [r, vocab], lora_embedding_B [hidden, r]),
    # listed by name; PEFT also saves the embedding's base weight (save_embedding_layers="auto").
    "embedding-qv": ("llama", dict(target_modules=["embed_tokens", "q_proj", "v_proj"])),
    # The same on a model whose lm_head is tied to embed_tokens, chosen by a regex, with rsLoRA and an embedding rank
    # and alpha of their own: the head reads the base weight in forward, and the merged (shared) weight after the merge.
    "tied-embedding-regex-rslora": ("llama-bf16-tied", dict(target_modules=r".*\.(embed_tokens|q_proj|v_proj)", use_rslora=True, rank_pattern={"embed_tokens": 2}, alpha_pattern={"embed_tokens": 4})),
    # Gemma 3's multimodal checkpoint (Gemma3ForConditionalGeneration, text-only forward): the language model's q_proj
    # and v_proj by a regex, so that PEFT leaves the vision tower's own q_proj and v_proj alone; the adapter names
    # modules as transformers 5 does in memory (model.language_model.layers...).
    "gemma3-language-model-qv": ("gemma3", dict(target_modules=r".*language_model.*\.(q_proj|v_proj)")),
}

# Cases whose reference also holds merge_and_unload()'s weights (`merged.<checkpoint name>`, the tensors it
# changes), for the streamed merge to match weight by weight.
FAMILY_CASES = {f"{family}-all-linear" for family in ["qwen3", "smollm3", "granite", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2"]}
MERGED_WEIGHTS = FAMILY_CASES | {"embedding-qv", "tied-embedding-regex-rslora"}


def load_base(base):
    """The base checkpoint in float32, with transformers' eager attention for gemma2 (the only path that soft-caps
    its attention scores; make_model_fixtures.py makes its references the same way)."""
    eager = base.removesuffix("-bf16") == "gemma2"
    return AutoModelForCausalLM.from_pretrained(MODELS / base, dtype=torch.float32, attn_implementation="eager" if eager else None)


ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
ADAMW_STEPS = 3


def adamw_trajectory(base, adapter, ids, mask, labels):
    """Three AdamW steps on the trainable parameters of the saved adapter: the losses before each step and the end point."""
    model = PeftModel.from_pretrained(load_base(base), adapter, is_trainable=True).eval()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for _, p in trainable], **ADAMW)
    losses = []
    for _ in range(ADAMW_STEPS):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return {"adamw_losses": torch.tensor(losses), **{f"adamw.{n}": p.detach().contiguous() for n, p in trainable}}


def randomize(model, generator):
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "lora_embedding_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
            elif "lora_magnitude_vector" in name or ("modules_to_save" in name) or (name.endswith(".bias") and param.requires_grad):
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)


def main():
    out_root = output_root(__doc__) / FOLDER
    os.chdir(ROOT)
    for case, (base, options) in CASES.items():
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(2)
        model = load_base(base)
        init = options.pop("init_lora_weights", False)
        config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=init, **options)
        model = get_peft_model(model, config)
        randomize(model, generator)
        out = out_root / case
        model.save_pretrained(out / "adapter")
        reference = load_file(str(MODELS / base / "reference.safetensors"))
        ids, mask = reference["input_ids"], reference["attention_mask"]
        labels = ids.masked_fill(mask == 0, -100)
        model.eval()  # no dropout anywhere, so both sides compute the same function; gradients still flow
        result = model(input_ids=ids, attention_mask=mask, labels=labels)
        result.loss.backward()
        tensors = {"input_ids": ids, "attention_mask": mask, "logits": result.logits.detach().contiguous(), "loss": result.loss.detach().reshape(1)}
        for name, param in model.named_parameters():
            if param.grad is not None:
                tensors[f"grad.{name}"] = param.grad.contiguous()
        with torch.no_grad():
            tensors["greedy"] = model.generate(input_ids=ids[:1, :5], attention_mask=torch.ones(1, 5, dtype=torch.long), max_new_tokens=8, do_sample=False)
            merged = model.merge_and_unload()
            tensors["merged_logits"] = merged(input_ids=ids, attention_mask=mask).logits.contiguous()
        if case in MERGED_WEIGHTS:
            checkpoint = load_file(str(MODELS / base / "model.safetensors"))
            for name, weight in merged.state_dict().items():
                if name in checkpoint and not torch.equal(weight, checkpoint[name].to(weight.dtype)):
                    tensors[f"merged.{name}"] = weight.detach().contiguous()
        tensors.update(adamw_trajectory(base, out / "adapter", ids, mask, labels))
        save_file(tensors, str(out / "reference.safetensors"))
        (out / "case.json").write_text(json.dumps({"base": base, "lora_config": {k: v for k, v in options.items()}, "init_lora_weights": init}, indent=2) + "\n")
        print(case, "written")
    (out_root / "VERSIONS.json").write_text(json.dumps({"torch": torch.__version__, "peft": peft.__version__}, indent=2) + "\n")


if __name__ == "__main__":
    main()
