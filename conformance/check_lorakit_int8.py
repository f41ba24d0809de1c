"""lorakit's LLM.int8 base (quantizeModel8bit, written by write-lorakit-quantized.ts) against bitsandbytes'
(transformers' load_in_8bit): every layer's int8 codes and row absmax (weight, SCB) equal bitsandbytes' exactly;
and the logits stay as close to the float model's as bitsandbytes' own do (relative error at most 1.5x
theirs: the int8 products round differently, bitsandbytes in float16 with int8 activations per row, lorakit
in float32 with uint8 activations per row)."""
import pathlib
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from report import report  # noqa: E402

MODEL = "examples/models/tiny-code-llama"


def main(folder):
    ours = load_file(str(pathlib.Path(folder) / "lorakit-int8.safetensors"))
    bnb = AutoModelForCausalLM.from_pretrained(MODEL, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cpu", dtype=torch.float32)
    float_model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    layers = [(name, m) for name, m in bnb.named_modules() if type(m).__name__ == "Linear8bitLt"]
    mismatched = [name for name, m in layers if not (torch.equal(m.weight.data, ours[f"{name}.weight"]) and torch.equal(m.weight.SCB.float(), ours[f"{name}.SCB"]))]
    results = [(len(layers) == 42 and not mismatched, f"{len(layers)} Linear8bitLt layers, codes and SCB equal lorakit's exactly in {len(layers) - len(mismatched)}")]
    with torch.no_grad():
        reference = float_model(input_ids=ours["input_ids"]).logits
        theirs = bnb(input_ids=ours["input_ids"]).logits.float()
    relative = lambda x: ((x - reference).norm() / reference.norm()).item()  # noqa: E731
    ok = relative(ours["logits"]) <= 1.5 * relative(theirs)
    results.append((ok, f"relative logit error against the float model: lorakit {relative(ours['logits']):.2e}, bitsandbytes {relative(theirs):.2e}"))
    return report(results, "lorakit's LLM.int8 against bitsandbytes'")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "conformance/out/lorakit-quantized-int8"))
