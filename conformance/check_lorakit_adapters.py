"""PEFT loads the adapters lorakit wrote (write-lorakit-adapters.ts) and must
reproduce lorakit's logits on the unpadded positions (max abs error 1e-4)."""
import pathlib
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from report import report

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4


def main(folder):
    results = []
    cases = sorted(p for p in pathlib.Path(folder).iterdir() if p.is_dir())
    for case in cases:
        ref = load_file(str(case / "lorakit.safetensors"))
        base = bytes(ref["base"].tolist()).decode()
        model = AutoModelForCausalLM.from_pretrained(ROOT / base, dtype=torch.float32)  # a path from the repository's root
        model = PeftModel.from_pretrained(model, case / "adapter").eval()
        with torch.no_grad():
            logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
        mask = ref["attention_mask"].bool()
        error = (logits - ref["logits"]).abs()[mask].max().item()
        results.append((error <= TOLERANCE, f"{case.name}: max abs logit error {error:.2e}"))
    return report(results, "peft loads lorakit adapter")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "conformance/out/lorakit-adapters"))
