"""The PyTorch + PEFT (+ bitsandbytes) side of `npm run bench:compare`: one task
per process, float32 compute on 2 threads, printing one JSON line, the same
fields as the lorakit side (benchmarks/compare/lorakit-tasks.ts).

    python benchmarks/compare/torch_tasks.py train-step <model> [--qlora | --int8] [--bf16] [--steps N] [--tokens 4x512]
    python benchmarks/compare/torch_tasks.py train-cli <model> <data.jsonl> [--steps 6] [--tokens 4x512]
    python benchmarks/compare/torch_tasks.py inference <model> [--tokens 4x512]
    python benchmarks/compare/torch_tasks.py decode <model> [--new-tokens 64] [--bf16]
    python benchmarks/compare/torch_tasks.py merge <model> <adapter> <out>
    python benchmarks/compare/torch_tasks.py quantize <model>
"""
import json
import resource
import statistics
import sys
import time

import torch

torch.set_num_threads(2)


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def token_ids(vocab, count, offset=0):
    return torch.tensor([(i * 7919 + offset) % vocab for i in range(count)], dtype=torch.long)


def load(model_dir, qlora=False, compute_dtype=torch.float32, int8=False):
    """The model in float32, or its linear layers (but the head) in bitsandbytes' NF4 (qlora) or LLM.int8 (int8)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    if not (qlora or int8):
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if int8:
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, quantization_config=config, device_map="cpu")


def option(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


# --tokens BxS: the batch of B sequences of S tokens that steps and forwards run on (4x512 unless given).
BATCH, SEQUENCE = (int(n) for n in option("--tokens", "4x512").split("x"))
NEW_TOKENS = int(option("--new-tokens", "64"))


def train_step(model_dir, qlora=False, steps=5, bf16=False, int8=False):
    """LoRA r=16 on every linear layer, AdamW, --tokens (4x512): one warm-up step, then the median of `steps`.
    With bf16, the forward runs under torch.autocast's bfloat16 (and QLoRA computes in bfloat16): what a user
    gets with one flag (Trainer's bf16=True) on a CPU with AVX512-BF16."""
    import contextlib
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(load(model_dir, qlora, torch.bfloat16 if bf16 else torch.float32, int8), LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = token_ids(model.config.vocab_size, BATCH * SEQUENCE, 13).reshape(BATCH, SEQUENCE)
    model.train()

    def step():
        with autocast():
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peakRssBytes": peak_rss_bytes()}


def inference(model_dir):
    """Forward tokens/s at --tokens (4x512; median of 2 after a warm-up)."""
    model = load(model_dir).eval()
    ids = token_ids(model.config.vocab_size, BATCH * SEQUENCE).reshape(BATCH, SEQUENCE)
    with torch.no_grad():
        model(input_ids=ids)
        forwards = []
        for _ in range(2):
            start = time.perf_counter()
            model(input_ids=ids)
            forwards.append(time.perf_counter() - start)
    return {"forwardTokensPerSecond": BATCH * SEQUENCE / statistics.median(forwards), "peakRssBytes": peak_rss_bytes()}


class TokenTimes:
    """A generate() streamer that notes when each new token arrives (its first put is the prompt)."""

    def __init__(self):
        self.puts, self.times = 0, []

    def put(self, value):
        self.puts += 1
        if self.puts > 1:
            self.times.append(time.perf_counter())

    def end(self):
        pass


def decode(model_dir, bf16=False):
    """Greedy decoding tokens/s after a 16-token prompt: --new-tokens (64) tokens, timed from the first new token to
    the last (the prompt's forward left out). bf16: the weights in bfloat16, which halves the bytes each token reads."""
    model = load(model_dir).eval()
    if bf16:
        model = model.to(torch.bfloat16)
    prompt = torch.tensor([[(i * 31) % model.config.vocab_size for i in range(16)]])
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        times = TokenTimes()
        model.generate(prompt, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, streamer=times)
    assert len(times.times) == NEW_TOKENS
    return {"greedyTokensPerSecond": (NEW_TOKENS - 1) / (times.times[-1] - times.times[0]), "peakRssBytes": peak_rss_bytes()}


def train_cli(model_dir, data, steps):
    """transformers' Trainer in float32, as `lora train` runs: LoRA r=16 (alpha 32, dropout 0.05) on every linear layer,
    the JSONL's texts cut at --tokens' S tokens, batches of B, `steps` AdamW steps on a linear schedule, gradients clipped
    at norm 1, a log line every step; tokens/s over the loop's time as Trainer reports it (train_runtime)."""
    import json
    import tempfile
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with open(data) as lines:
        examples = [{"input_ids": tokenizer(json.loads(line)["text"], truncation=True, max_length=SEQUENCE)["input_ids"]} for line in lines]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear"))
    with tempfile.TemporaryDirectory() as out:
        arguments = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, max_steps=steps, learning_rate=2e-4, lr_scheduler_type="linear",
                                      max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=42)
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
        metrics = Trainer(model=model, args=arguments, train_dataset=examples, data_collator=collator).train().metrics
    tokens = sum(min(len(e["input_ids"]), SEQUENCE) for e in examples[: steps * BATCH])
    return {"tokensPerSecond": tokens / metrics["train_runtime"], "wallSeconds": time.perf_counter() - start, "peakRssBytes": peak_rss_bytes()}


def merge(model_dir, adapter_dir, out_dir):
    """PEFT's merge: load (in the checkpoint's bf16), merge_and_unload, save_pretrained; timed from load to saved."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.save_pretrained(out_dir)
    return {"seconds": time.perf_counter() - start, "peakRssBytes": peak_rss_bytes()}


def quantize(model_dir):
    """bitsandbytes' NF4 with double quantization (blocks of 64) of every linear weight but the head, from float32 in memory."""
    import bitsandbytes.functional as F
    model = load(model_dir)
    weights = [m.weight.data for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")]
    start = time.perf_counter()
    for w in weights:
        F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    return {"seconds": time.perf_counter() - start, "weights": sum(w.numel() for w in weights), "peakRssBytes": peak_rss_bytes()}


if __name__ == "__main__":
    task, *args = sys.argv[1:]
    if task == "train-step":
        result = train_step(args[0], qlora="--qlora" in args, steps=int(option("--steps", "5")), bf16="--bf16" in args, int8="--int8" in args)
    elif task == "train-cli":
        result = train_cli(args[0], args[1], steps=int(option("--steps", "6")))
    elif task == "inference":
        result = inference(args[0])
    elif task == "decode":
        result = decode(args[0], bf16="--bf16" in args)
    elif task == "merge":
        result = merge(*args)
    elif task == "quantize":
        result = quantize(args[0])
    else:
        sys.exit(f"unknown task {task}")
    print(json.dumps(result))
