"""onnxruntime runs what `lora export --format onnx` wrote (write-lorakit-onnx.ts), step by step with its
key/value cache, and transformers checks it:
- every architecture fixture: the logits of the fixture's padded batch, fed in two steps (the second over the
  cache of the first), equal transformers' to 1e-4 on unpadded positions; then one greedy token more, fed alone
  over the cache, gives transformers' logits for the longer sequence;
- q4: every MatMulNBits weight, dequantized here with numpy from its packed nibbles and scales, is within half a
  quantization step of transformers' float weight (one step where the code clamps at +7), and the logits stay
  within 12% (relative L2) of transformers';
- tiny-code-llama with the PEFT adapter fixture folded in, and kept as LoRA layers: PEFT's adapter logits (1e-4)."""
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from report import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "packages/models/fixtures"
BASE = ROOT / "examples/models/tiny-code-llama"
QV = ROOT / "packages/adapters/peft-fixtures/codellama_qv_r8"
ARCHITECTURES = ["llama", "llama-rope-linear", "llama-rope-llama3", "llama-bf16-tied", "mistral", "qwen2", "gpt2", "qwen3",
                 "qwen3-sliding", "smollm3", "granite", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2"]


class Decoder:
    """An exported decoder graph and its cache's shape, read from the graph's declared inputs."""

    def __init__(self, path):
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.past = {i.name: i.shape for i in self.session.get_inputs() if i.name.startswith("past_key_values.")}

    def step(self, ids, mask, positions, present=None):
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        for name, (_, heads, _, dim) in self.past.items():
            feeds[name] = present[name.replace("past_key_values", "present")] if present else np.zeros((ids.shape[0], heads, 0, dim), np.float32)
        names = [o.name for o in self.session.get_outputs()]
        outputs = dict(zip(names, self.session.run(None, feeds)))
        return outputs["logits"], outputs


def arange(rows, start, stop):
    return np.tile(np.arange(start, stop, dtype=np.int64), (rows, 1))


def masked_error(ours, theirs, mask):
    return float(np.abs(ours - theirs)[mask.astype(bool)].max())


def check_architecture(name, folder):
    reference = load_file(str(FIXTURES / name / "reference.safetensors"))
    ids, mask = reference["input_ids"].numpy(), reference["attention_mask"].numpy()
    # gemma2's attention soft cap is only in transformers' eager attention (as in make_model_fixtures.py)
    attention = "eager" if name == "gemma2" else None
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / name, dtype=torch.float32, attn_implementation=attention).eval()
    with torch.no_grad():
        theirs = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    decoder = Decoder(folder / name / "onnx/model.onnx")
    rows, length, split = ids.shape[0], ids.shape[1], 7
    first, cache = decoder.step(ids[:, :split], mask[:, :split], arange(rows, 0, split))
    second, cache = decoder.step(ids[:, split:], mask, arange(rows, split, length), cache)
    error = max(masked_error(first, theirs[:, :split], mask[:, :split]), masked_error(second, theirs[:, split:], mask[:, split:]))
    token = second[:, -1].argmax(-1)[:, None].astype(np.int64)
    longer_ids, longer_mask = np.concatenate([ids, token], 1), np.concatenate([mask, np.ones((rows, 1), np.int64)], 1)
    third, _ = decoder.step(token, longer_mask, arange(rows, length, length + 1), cache)
    with torch.no_grad():
        expected = model(input_ids=torch.from_numpy(longer_ids), attention_mask=torch.from_numpy(longer_mask)).logits[:, -1:].numpy()
    error_next = float(np.abs(third - expected).max())
    return error <= 1e-4 and error_next <= 1e-4, f"{name}: max abs logit error {error:.2e} (prompt in two steps), {error_next:.2e} (one token over the cache)"


def dequantize_q4(packed, scales, k):
    """[N, blocks, 16] uint8, [N, blocks] -> [N, K]: element 2j in the low nibble of byte j, 2j + 1 in the high one."""
    low, high = packed & 0x0F, packed >> 4
    codes = np.stack([low, high], axis=-1).reshape(packed.shape[0], -1)  # [N, blocks · 32]
    steps = codes.astype(np.float32) - 8
    return (steps.reshape(packed.shape[0], scales.shape[1], 32) * scales[:, :, None]).reshape(packed.shape[0], -1)[:, :k]


def check_q4(folder):
    graph = onnx.load(str(folder / "tiny-code-llama-q4/onnx/model_q4.onnx"))
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    theirs = {k: v.numpy() for k, v in AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32).state_dict().items()}
    results, worst = [], 0.0
    names = [n[: -len("_Q4")] for n in initializers if n.endswith("_Q4")]
    for name in names:
        weight = theirs[name]
        scales = initializers[f"{name}_scales"]
        restored = dequantize_q4(initializers[f"{name}_Q4"], scales, weight.shape[1])
        step = np.repeat(scales, 32, axis=1)[:, : weight.shape[1]]
        clamped = weight / step > 7.5
        bound = np.where(clamped, np.abs(step), np.abs(step) / 2) + 1e-6
        worst = max(worst, float((np.abs(restored - weight) / bound).max()))
    results.append((len(names) > 0 and worst <= 1, f"q4: {len(names)} MatMulNBits weights read back with numpy within their quantization step (worst {worst:.3f} of the bound)"))
    io = load_file(str(QV / "io.safetensors"))
    ids, mask = io["input_ids"].numpy(), io["attention_mask"].numpy()
    logits, _ = Decoder(folder / "tiny-code-llama-q4/onnx/model_q4.onnx").step(ids, mask, arange(*ids.shape[:1], 0, ids.shape[1]))
    reference = io["base_logits"].numpy()
    keep = mask.astype(bool)
    relative = float(np.linalg.norm(logits[keep] - reference[keep]) / np.linalg.norm(reference[keep]))
    results.append((0 < relative <= 0.12, f"q4: logits within {relative:.3f} (relative L2) of transformers' float32 logits"))
    return results


def check_adapter(folder, case):
    io = load_file(str(QV / "io.safetensors"))
    ids, mask = io["input_ids"].numpy(), io["attention_mask"].numpy()
    logits, _ = Decoder(folder / case / "onnx/model.onnx").step(ids, mask, arange(ids.shape[0], 0, ids.shape[1]))
    error = masked_error(logits, io["adapter_logits"].numpy(), mask)
    return error <= 1e-4, f"{case}: max abs logit error {error:.2e} against PEFT's adapter logits"


def main(folder):
    folder = pathlib.Path(folder)
    results = [check_architecture(name, folder) for name in ARCHITECTURES]
    results += check_q4(folder)
    results += [check_adapter(folder, case) for case in ["codellama-merged", "codellama-lora"]]
    return report(results, "onnxruntime runs `lora export --format onnx` output:")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
