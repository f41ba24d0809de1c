#!/usr/bin/env bash
# lorakit against PyTorch + transformers + PEFT, both directions. Needs Python 3.11.
#   npm run conformance
set -euo pipefail
cd "$(dirname "$0")/.."
venv=conformance/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import peft, transformers, torch, bitsandbytes" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r conformance/requirements.txt
fi
out=conformance/out
rm -rf "$out" && mkdir -p "$out"
npx tsx conformance/write-lorakit-adapters.ts "$out/lorakit-adapters"
npx tsx conformance/write-lorakit-quantized.ts "$out/lorakit-quantized"
mkdir -p "$out/lorakit-merged"
for dtype in f32 bf16; do
  node packages/cli/bin/lora.mjs merge examples/models/tiny-code-llama --adapter ../shared/fixtures/peft/codellama_qv_r8/adapter \
    --dtype "$dtype" --out "$out/lorakit-merged/merged-$dtype" > /dev/null
done
status=0
check() { # script, folder, log
  "$venv/bin/python" "conformance/$1" "$out/$2" > "$out/$3" 2>&1 || status=1
  grep -E "^(ok|FAIL|Traceback|[A-Za-z]+Error)|passed, .* failed" "$out/$3" || cat "$out/$3"
}
check check_lorakit_adapters.py lorakit-adapters peft-check.log
check check_lorakit_quantized.py lorakit-quantized bnb-check.log
check check_lorakit_merged.py lorakit-merged merged-check.log
exit "$status"
