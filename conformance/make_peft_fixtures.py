"""PEFT's references for the embedded tiny-code-llama, for @lorakit/models',
@lorakit/adapters' and @lorakit/cli's tests. PyTorch + transformers + PEFT on
the CPU in float32, from examples/models/tiny-code-llama; every random draw
comes from a fixed seed (SEEDS below).

Writes packages/adapters/peft-fixtures/ under the output root:
  tokenization.json             texts and the ids transformers' tokenizer gives (no special tokens)
  codellama_qv_r8/              LoRA r=8, alpha=16 on q_proj, v_proj; B drawn with std 0.05
    adapter/                    the adapter as PEFT saves it (its model card left out)
    io.safetensors              input_ids, attention_mask [2, 24] (row 1 left-padded by 5, positions
                                0..23 for both rows), base_logits, adapter_logits, merged_logits [2, 24, 4096]
    merged_subset.safetensors   every tensor merge_and_unload() changes (q_proj, v_proj of the 6 layers)
    meta.json                   the config, parameter counts, PEFT's trainable-parameters line
  codellama_train_trajectory/   the same LoRA with B drawn with std 0.02, six AdamW steps, one batch each
    adapter_init/, adapter_final/   the adapter before step 1 and after step 6
    batches.safetensors         b{i}_input_ids, b{i}_attention_mask, b{i}_labels [4, 64], i = 0..5: a stream
                                of house-style training examples; row 0 left-padded by 7, labels -100 there
    grads_step0.safetensors     the gradient of batch 0's loss for every LoRA parameter (PEFT's in-memory names)
    meta.json                   the optimizer settings and the loss before each step
    greedy.json                 40 greedy tokens after two prompts, without and with adapter_final

    conformance/.venv/bin/python conformance/make_peft_fixtures.py [OUTPUT_ROOT]
"""
import contextlib
import io
import json
import os
import pathlib

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from output_root import ROOT, output_root

# Relative to the repository's root (main() goes there): PEFT records the base model's path in each adapter.
MODEL = pathlib.Path("examples") / "models" / "tiny-code-llama"
DATA = pathlib.Path("examples") / "data" / "house-style" / "train.jsonl"
FOLDER = pathlib.Path("packages") / "adapters" / "peft-fixtures"
SEEDS = dict(qv_lora_a=0, qv_lora_b=1, qv_inputs=2, train_lora_a=3, train_lora_b=4, train_batches=5)
LORA = dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
PAD = 1
TEXTS = ["def add(a, b):\n    return a + b\n", "import os\nprint(os.getcwd())", "  leading spaces\tand tabs\n\n",
         "unicode: h\u00e9llo w\u00f6rld \u2014 \u2713 \u65e5\u672c\u8a9e \U0001f642", "x = [i ** 2 for i in range(10)]  # squares",
         "class Stack:\n    def __init__(self):\n        self.items = []\n", "0x1F + 3.14e-10 != 1_000_000", ""]
PROMPTS = ["def fibonacci(n):\n", "class Stack:\n    def __init__(self):\n"]


def load_base():
    return AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()


def qv_inputs(vocab):
    """input_ids, attention_mask [2, 24]: random ids; row 1 left-padded by 5 with the pad id."""
    ids = torch.randint(3, vocab, (2, 24), generator=torch.Generator().manual_seed(SEEDS["qv_inputs"]))
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[1, :5] = 0
    ids[1, :5] = PAD
    return ids, mask


def lora_model(seed_a, seed_b, std):
    """PEFT's LoRA on a fresh base: A as PEFT initialises it under seed_a, B drawn with `std` from seed_b."""
    torch.manual_seed(seed_a)
    model = get_peft_model(load_base(), LoraConfig(**LORA)).eval()  # eval: no dropout anywhere; gradients still flow
    generator = torch.Generator().manual_seed(seed_b)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model


def save_adapter(model, folder):
    model.save_pretrained(folder)
    (folder / "README.md").unlink(missing_ok=True)  # PEFT's model card: versions and placeholders, nothing a test reads


def logits(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.contiguous()


def write_tokenization(out, tokenizer):
    cases = [{"text": text, "ids": tokenizer(text, add_special_tokens=False)["input_ids"]} for text in TEXTS]
    for case in cases:
        assert tokenizer.decode(case["ids"]) == case["text"], case  # the tests decode back to the text
    (out / "tokenization.json").write_text(json.dumps(cases, indent=1) + "\n")


def write_qv(out):
    model = lora_model(SEEDS["qv_lora_a"], SEEDS["qv_lora_b"], std=0.05)
    save_adapter(model, out / "adapter")
    ids, mask = qv_inputs(model.config.vocab_size)
    adapter_logits = logits(model, ids, mask)
    with model.disable_adapter():
        base_logits = logits(model, ids, mask)
    trainable, total = model.get_nb_trainable_parameters()
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        model.print_trainable_parameters()
    merged = model.merge_and_unload()
    save_file({"input_ids": ids, "attention_mask": mask, "base_logits": base_logits, "adapter_logits": adapter_logits,
               "merged_logits": logits(merged, ids, mask)}, str(out / "io.safetensors"))
    state = merged.state_dict()
    changed = {name: state[name].contiguous() for name in sorted(state) if name.endswith(("q_proj.weight", "v_proj.weight"))}
    save_file(changed, str(out / "merged_subset.safetensors"))
    meta = {"model": MODEL.as_posix(), "lora_config_kwargs": LORA, "seeds": {k: v for k, v in SEEDS.items() if k.startswith("qv_")},
            "b_std": 0.05, "trainable_params": trainable, "all_params": total, "trainable_line": printed.getvalue().strip()}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def training_batches(tokenizer):
    """Six batches [4, 64] cut from one stream of the house-style training examples (in an order drawn
    from a seed, each followed by EOS); row 0 of each batch is shifted right by 7 behind padding."""
    lines = [json.loads(line) for line in DATA.read_text().splitlines()]
    stream = []
    for i in torch.randperm(len(lines), generator=torch.Generator().manual_seed(SEEDS["train_batches"])).tolist():
        stream += tokenizer(lines[i]["prompt"] + lines[i]["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor(stream[: 6 * 4 * 64]).reshape(6, 4, 64)
    mask = torch.ones_like(ids)
    ids[:, 0, 7:] = ids[:, 0, :57].clone()
    ids[:, 0, :7] = PAD
    mask[:, 0, :7] = 0
    labels = ids.masked_fill(mask == 0, -100)
    return [{"input_ids": ids[i], "attention_mask": mask[i], "labels": labels[i]} for i in range(6)]


def write_trajectory(out, tokenizer):
    model = lora_model(SEEDS["train_lora_a"], SEEDS["train_lora_b"], std=0.02)
    save_adapter(model, out / "adapter_init")
    batches = training_batches(tokenizer)
    trainable = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW([param for _, param in trainable], **ADAMW)
    losses = []
    for step, batch in enumerate(batches):
        loss = model(**batch).loss  # transformers' causal-LM loss: shifted inside the model, mean over labels != -100
        loss.backward()
        if step == 0:
            save_file({name: param.grad.contiguous() for name, param in trainable}, str(out / "grads_step0.safetensors"))
        losses.append(loss.item())
        optimizer.step()
        optimizer.zero_grad()
    save_adapter(model, out / "adapter_final")
    save_file({f"b{i}_{key}": value.contiguous() for i, batch in enumerate(batches) for key, value in batch.items()},
              str(out / "batches.safetensors"))
    meta = {"optimizer": "torch.optim.AdamW", **ADAMW, "lora_config_kwargs": LORA, "b_std": 0.02,
            "seeds": {k: v for k, v in SEEDS.items() if k.startswith("train_")},
            "loss": "transformers causal-LM loss (labels shifted inside the model, -100 ignored, mean over tokens)", "losses": losses}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def greedy(model, ids):
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False)
    return out[0].tolist()


def write_greedy(out, tokenizer):
    base = load_base()
    adapted = PeftModel.from_pretrained(load_base(), out / "adapter_final").eval()
    cases = []
    for prompt in PROMPTS:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids])
        base_ids, adapter_ids = greedy(base, ids), greedy(adapted, ids)
        for generated in (base_ids, adapter_ids):  # the tests expect 40 tokens: none may end the text early
            assert len(generated) == len(prompt_ids) + 40 and tokenizer.eos_token_id not in generated[len(prompt_ids):], prompt
        cases.append({"prompt": prompt, "prompt_ids": prompt_ids, "base_ids": base_ids, "adapter_ids": adapter_ids,
                      "base_text": tokenizer.decode(base_ids), "adapter_text": tokenizer.decode(adapter_ids)})
    assert any(c["base_ids"] != c["adapter_ids"] for c in cases), "the trained adapter changes no continuation"
    (out / "greedy.json").write_text(json.dumps(cases, indent=1) + "\n")


def main():
    out = output_root(__doc__) / FOLDER
    os.chdir(ROOT)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    for folder in ["codellama_qv_r8", "codellama_train_trajectory"]:
        (out / folder).mkdir(parents=True, exist_ok=True)
    write_tokenization(out, tokenizer)
    write_qv(out / "codellama_qv_r8")
    write_trajectory(out / "codellama_train_trajectory", tokenizer)
    write_greedy(out / "codellama_train_trajectory", tokenizer)
    (out / "VERSIONS.json").write_text(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                                                    "peft": peft.__version__}, indent=2) + "\n")
    print("written under", out)


if __name__ == "__main__":
    main()
