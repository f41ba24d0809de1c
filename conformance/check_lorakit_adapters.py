"""PEFT loads the adapters lorakit wrote (write-lorakit-adapters.ts,
write-lorakit-cli.ts) and must wrap exactly the modules the adapter file holds
LoRA weights for (the same targets, whether the config lists them or says
all-linear) and reproduce lorakit's logits on the unpadded positions (max abs
error 1e-4). For `lora add --target all-linear` (cases named cli-add-all-linear-*)
those modules must also be the ones PEFT's own all-linear picks on that model.
PEFT's save_pretrained of the loaded adapter must write the keys and shapes the
file holds (for targeted embeddings: lora_embedding_A/B and the base weight
PEFT's save_embedding_layers="auto" adds)."""
import pathlib
import sys
import tempfile

import warnings

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from report import report

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4


def load_base(base):
    """A base model fixture in float32 (a path from the repository's root); gemma2 with transformers' eager
    attention, the only path that applies its attention soft cap."""
    eager = pathlib.Path(base).name.removesuffix("-bf16") == "gemma2"
    return AutoModelForCausalLM.from_pretrained(ROOT / base, dtype=torch.float32, attn_implementation="eager" if eager else None)


def main(folder):
    results = []
    cases = sorted(p for p in pathlib.Path(folder).iterdir() if p.is_dir())
    for case in cases:
        ref = load_file(str(case / "lorakit.safetensors"))
        base = bytes(ref["base"].tolist()).decode()
        model = PeftModel.from_pretrained(load_base(base), case / "adapter").eval()
        saved = {key.split(".lora_")[0].removeprefix("base_model.model.") for key in load_file(str(case / "adapter" / "adapter_model.safetensors")) if ".lora_" in key}
        wrapped = {name.removeprefix("base_model.model.") for name, module in model.named_modules() if isinstance(module, LoraLayer)}
        if saved != wrapped:
            results.append((False, f"{case.name}: PEFT wraps {sorted(wrapped ^ saved)} differently from the adapter file"))
            continue
        written = {k: tuple(v.shape) for k, v in load_file(str(case / "adapter" / "adapter_model.safetensors")).items()}
        with tempfile.TemporaryDirectory() as resaved:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Setting `save_embedding_layers` to `True`", said for embedding targets
                model.save_pretrained(resaved)
            peft_keys = {k: tuple(v.shape) for k, v in load_file(str(pathlib.Path(resaved) / "adapter_model.safetensors")).items()}
        if peft_keys != written:
            results.append((False, f"{case.name}: PEFT saves {sorted(set(peft_keys.items()) ^ set(written.items()))} differently from lorakit"))
            continue
        if case.name.startswith("cli-add-all-linear-"):
            own = get_peft_model(load_base(base), LoraConfig(target_modules="all-linear"))
            picked = {name.removeprefix("base_model.model.") for name, module in own.named_modules() if isinstance(module, LoraLayer)}
            if picked != saved:
                results.append((False, f"{case.name}: PEFT's all-linear picks {sorted(picked ^ saved)} differently from lora add"))
                continue
        with torch.no_grad():
            logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
        mask = ref["attention_mask"].bool()
        error = (logits - ref["logits"]).abs()[mask].max().item()
        results.append((error <= TOLERANCE, f"{case.name}: {len(wrapped)} modules wrapped and {len(written)} tensors saved as in the file, max abs logit error {error:.2e}"))
    return report(results, "peft loads lorakit adapter")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "conformance/out/lorakit-adapters"))
