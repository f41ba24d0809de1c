"""transformers + bitsandbytes load the 4-bit models lorakit saved
(write-lorakit-quantized.ts); with the weights bitsandbytes dequantizes, the
logits must equal lorakit's (max abs error 1e-4)."""
import pathlib
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_bnb_fixtures import dequantize_in_place  # noqa: E402
from report import report  # noqa: E402


def main(folder):
    results = []
    cases = sorted(p for p in pathlib.Path(folder).iterdir() if p.is_dir())
    for case in cases:
        model = AutoModelForCausalLM.from_pretrained(case, device_map="cpu", dtype=torch.float32)
        quantized = sum(1 for m in model.modules() if type(m).__name__ == "Linear4bit")
        dequantize_in_place(model)
        ref = load_file(str(case / "lorakit-logits.safetensors"))
        with torch.no_grad():
            logits = model(input_ids=ref["input_ids"]).logits
        error = (logits - ref["logits"]).abs().max().item()
        results.append((error <= 1e-4 and quantized == 42, f"{case.name}: {quantized} Linear4bit, max abs logit error {error:.2e}"))
    return report(results, "bitsandbytes loads lorakit's 4-bit")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "conformance/out/lorakit-quantized"))
