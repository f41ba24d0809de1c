"""transformers loads the checkpoints `lora merge` wrote (run.sh) from PEFT's
own adapter. float32: the logits equal PEFT's merge_and_unload() logits from
the fixture. bf16: every weight equals PEFT's merge_and_unload() rounded to
bf16 by torch, and so do the logits (max abs error 1e-4). Gemma 3's multimodal checkpoint merged with PEFT's
adapter on its language model: transformers loads it as Gemma3ForConditionalGeneration with PEFT's merged
logits, and every vision tensor is the base's, bit for bit."""
import pathlib
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

from report import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
QV = ROOT / "packages/adapters/peft-fixtures/codellama_qv_r8"
BASE = ROOT / "examples/models/tiny-code-llama"
GEMMA3 = ROOT / "packages/models/fixtures/gemma3"
GEMMA3_CASE = ROOT / "packages/adapters/fixtures/gemma3-language-model-qv"


def logits_of(model, io):
    with torch.no_grad():
        logits = model(input_ids=io["input_ids"], attention_mask=io["attention_mask"]).logits
    return logits[io["attention_mask"].bool()]


def peft_merged_bf16():
    base = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, QV / "adapter").merge_and_unload()
    with torch.no_grad():  # the weights only: model.to(bfloat16) would also round the rotary inv_freq buffer
        for parameter in merged.parameters():
            parameter.copy_(parameter.to(torch.bfloat16).to(torch.float32))
    return merged


def main(folder):
    io = load_file(str(QV / "io.safetensors"))
    results = []
    ours = AutoModelForCausalLM.from_pretrained(pathlib.Path(folder) / "merged-f32", dtype=torch.float32)
    error = (logits_of(ours, io) - io["merged_logits"][io["attention_mask"].bool()]).abs().max().item()
    results.append((error <= 1e-4, f"merged-f32: max abs logit error {error:.2e} against PEFT's merged logits"))

    ours = AutoModelForCausalLM.from_pretrained(pathlib.Path(folder) / "merged-bf16", dtype=torch.float32)
    reference = peft_merged_bf16()
    theirs = reference.state_dict()
    differing = [k for k, v in ours.state_dict().items() if not torch.equal(v, theirs[k])]
    error = (logits_of(ours, io) - logits_of(reference, io)).abs().max().item()
    results.append((not differing and error <= 1e-4, f"merged-bf16: {len(differing)} tensors differ from PEFT's merge rounded to bf16 {differing[:3]}, max abs logit error {error:.2e}"))

    results.append(check_gemma3(pathlib.Path(folder) / "merged-gemma3"))
    return report(results, "transformers loads `lora merge` output")


def check_gemma3(merged_dir):
    reference = load_file(str(GEMMA3_CASE / "reference.safetensors"))
    ours = AutoModelForImageTextToText.from_pretrained(merged_dir, dtype=torch.float32).eval()
    mask = reference["attention_mask"].bool()
    error = (logits_of(ours, reference) - reference["merged_logits"][mask]).abs().max().item()
    base, merged = load_file(str(GEMMA3 / "model.safetensors")), load_file(str(merged_dir / "model.safetensors"))
    vision = [k for k in base if not k.startswith("language_model.")]
    changed = [k for k in vision if k not in merged or not torch.equal(base[k], merged[k])]
    return (type(ours).__name__ == "Gemma3ForConditionalGeneration" and vision and not changed and error <= 1e-4,
            f"merged-gemma3: loads as {type(ours).__name__}, {len(vision)} vision tensors ({len(changed)} changed), max abs logit error {error:.2e} against PEFT's merged logits")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
