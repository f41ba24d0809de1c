#!/usr/bin/env bash
# lorakit against PyTorch + transformers + PEFT, both directions. Needs Python 3.11.
#   npm run conformance
set -euo pipefail
cd "$(dirname "$0")/.."
venv=conformance/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import peft, transformers, torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r conformance/requirements.txt
fi
out=conformance/out
rm -rf "$out" && mkdir -p "$out"
npx tsx conformance/write-lorakit-adapters.ts "$out/lorakit-adapters"
status=0
"$venv/bin/python" conformance/check_lorakit_adapters.py "$out/lorakit-adapters" > "$out/peft-check.log" 2>&1 || status=$?
grep -E "^(ok|FAIL|Traceback|[A-Za-z]+Error)|passed, .* failed" "$out/peft-check.log" || cat "$out/peft-check.log"
exit "$status"
