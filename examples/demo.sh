#!/usr/bin/env bash
# The whole job through the `lora` command on the embedded tiny-code-llama:
# inspect, add LoRA to q_proj and v_proj, train on the house-style dataset,
# generate before and after, merge, and check that the merged model generates
# exactly what the adapter model did. Everything goes to out/demo (recreated).
set -euo pipefail
cd "$(dirname "$0")/.."

lora() { node packages/cli/bin/lora.mjs "$@"; }
MODEL=examples/models/tiny-code-llama
DATA=examples/data/house-style
OUT=out/demo
PROMPT=$'def area_of_circle(radius):\n'
rm -rf "$OUT" && mkdir -p "$OUT"
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n$ lora %s\n' "$bold" "$1" "$plain" "${*:2}"; }

step "the model and what LoRA can target" inspect $MODEL --depth 1
lora inspect $MODEL --depth 1

step "a LoRA adapter on q_proj and v_proj" add $MODEL --target q_proj,v_proj --r 8 --alpha 16 --out $OUT/adapter
lora add $MODEL --target q_proj,v_proj --r 8 --alpha 16 --out $OUT/adapter

step "before training" generate $MODEL --prompt "'def area_of_circle(radius):\\n'" --max-new-tokens 40
lora generate $MODEL --prompt "$PROMPT" --max-new-tokens 40

step "train on $DATA (76 steps)" train $MODEL --adapter $OUT/adapter --data $DATA/train.jsonl --eval $DATA/eval.jsonl \
  --epochs 4 --batch-size 8 --lr 3e-3 --warmup 5 --scheduler cosine --max-length 64 --logging-steps 5 --out $OUT/run
lora train $MODEL --adapter $OUT/adapter --data $DATA/train.jsonl --eval $DATA/eval.jsonl \
  --epochs 4 --batch-size 8 --lr 3e-3 --warmup 5 --scheduler cosine --max-length 64 --logging-steps 5 --out $OUT/run

step "after training, with the adapter" generate $MODEL --adapter $OUT/run/adapter --prompt "'def area_of_circle(radius):\\n'" --max-new-tokens 40
lora generate $MODEL --adapter $OUT/run/adapter --prompt "$PROMPT" --max-new-tokens 40 | tee $OUT/adapter-generation.txt

step "merge the adapter into a new checkpoint" merge $MODEL --adapter $OUT/run/adapter --out $OUT/merged
lora merge $MODEL --adapter $OUT/run/adapter --out $OUT/merged

step "the merged model, without the adapter" generate $OUT/merged --prompt "'def area_of_circle(radius):\\n'" --max-new-tokens 40
lora generate $OUT/merged --prompt "$PROMPT" --max-new-tokens 40 | tee $OUT/merged-generation.txt

if cmp -s $OUT/adapter-generation.txt $OUT/merged-generation.txt; then
  printf '\nthe merged model generates exactly what the adapter model did\n'
else
  printf '\nthe merged model generates something else than the adapter model:\n' >&2
  diff $OUT/adapter-generation.txt $OUT/merged-generation.txt >&2
  exit 1
fi
