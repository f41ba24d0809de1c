#!/usr/bin/env bash
# lorakit against PyTorch + transformers + PEFT (+ bitsandbytes), both directions.
#   npm run conformance        (Python 3.11; the virtual environment is made on first use)
# 1. PyTorch's side regenerates the fixtures the unit tests read, under conformance/out/fixtures (never
#    over the committed ones), and compare_fixtures.py checks them against the committed set within the
#    tolerances its docstring states, one verdict per file.
# 2. PEFT, transformers and bitsandbytes load what lorakit writes: adapters (library, `lora add`,
#    `lora train`), 4-bit models (library, `lora quantize`) and `lora merge` output; bitsandbytes' LLM.int8
#    codes and logits against quantizeModel8bit's.
# 3. onnxruntime runs what `lora export --format onnx` writes, step by step with its cache, against
#    transformers' and PEFT's logits, and numpy reads its 4-bit MatMulNBits weights back; the gguf package
#    reads what `lora export --format gguf` writes, its tensors against transformers' and PEFT's.
# Ends with "conformance: N passed, N failed", which .ci/run reads.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=conformance/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# pip prints a warning for every package index it cannot reach: keep its log for failures only.
"$venv/bin/pip" install -r conformance/requirements.txt > "$venv/pip.log" 2>&1 || { tail -30 "$venv/pip.log"; exit 1; }
export PYTHONHASHSEED=0 # PEFT writes target_modules from a set
out=conformance/out
rm -rf "$out" && mkdir -p "$out"
status=0
check() { # script, folder, log: the script's verdict lines (report.py) and its "N passed, N failed"
  "$venv/bin/python" "conformance/$1" "$out/$2" > "$out/$3" 2>&1 || status=1
  grep -E "^(ok|FAIL|Traceback|[A-Za-z]+Error)|^[0-9]+ passed, [0-9]+ failed$" "$out/$3" || cat "$out/$3"
}

for script in make_peft_fixtures make_model_fixtures make_adapter_fixtures make_bnb_fixtures; do
  "$venv/bin/python" "conformance/$script.py" "$out/fixtures" > "$out/$script.log" 2>&1 || { cat "$out/$script.log"; status=1; }
done
check compare_fixtures.py fixtures fixtures-check.log

npx tsx conformance/write-lorakit-adapters.ts "$out/lorakit-adapters" > /dev/null
npx tsx conformance/write-lorakit-quantized.ts "$out/lorakit-quantized" > /dev/null
npx tsx conformance/write-lorakit-cli.ts "$out" > /dev/null 2> "$out/write-lorakit-cli.log" || { cat "$out/write-lorakit-cli.log"; exit 1; }
mkdir -p "$out/lorakit-merged"
for dtype in f32 bf16; do
  node packages/cli/bin/lora.mjs merge examples/models/tiny-code-llama --adapter packages/adapters/peft-fixtures/codellama_qv_r8/adapter \
    --dtype "$dtype" --out "$out/lorakit-merged/merged-$dtype" > /dev/null
done
node packages/cli/bin/lora.mjs merge packages/models/fixtures/gemma3 --adapter packages/adapters/fixtures/gemma3-language-model-qv/adapter \
  --out "$out/lorakit-merged/merged-gemma3" > /dev/null
check check_lorakit_adapters.py lorakit-adapters peft-check.log
check check_lorakit_quantized.py lorakit-quantized bnb-check.log
check check_lorakit_int8.py lorakit-quantized-int8 int8-check.log
check check_lorakit_merged.py lorakit-merged merged-check.log
npx tsx conformance/write-lorakit-onnx.ts "$out/lorakit-onnx" > /dev/null
check check_lorakit_onnx.py lorakit-onnx onnx-check.log
npx tsx conformance/write-lorakit-gguf.ts "$out/lorakit-gguf" > /dev/null
check check_lorakit_gguf.py lorakit-gguf gguf-check.log

cat "$out"/*-check.log | awk '/^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 } END { printf "conformance: %d passed, %d failed\n", p, f }'
exit "$status"
