#!/usr/bin/env bash
# The gap-length comparison of issue 6 in one command. Nobody says how long a completion
# should be; three ways to decide it, on the same corpus and training budget:
#   EOS-padded fixed canvas   one 64-token canvas (a canvas_size=64 model), the tail <eom>
#   block-by-block            16-token canvases, continued until a block holds <eom>
#   predicted length          the end read off the first pass's <eom> probabilities
#                             (`--lengths predicted`, on both models)
# Both models train with the same preset and minutes; `diffill eval --compare` scores them
# on the same held-out examples. The table goes to stdout and $OUT/gap_length.md.
#
# Proof on a CPU:   PRESET=tiny MINUTES=0.3 EVAL_LIMIT=2 scripts/gap_length.sh
# On a GPU:         OUT=$OUT PRESET=gpu MINUTES=3 scripts/gap_length.sh
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gap_length}
PRESET=${PRESET:-default}
MINUTES=${MINUTES:-10}
EVAL_LIMIT=${EVAL_LIMIT:-40}
SEQ_LEN=${SEQ_LEN:-256}  # leaves a 64-token canvas at least three blocks of context
STEPS=${STEPS:-0}  # denoising steps per block; 0: at most one per position
CORPUS=${CORPUS:-data/corpus.json}
TOKENIZER=${TOKENIZER:-models/tokenizer.json}
DIFFILL=${DIFFILL:-diffill}
mkdir -p "$OUT"
[ -f "$CORPUS" ] || "$DIFFILL" corpus --out "$CORPUS"

train() {  # model folder name, extra train options
  local name=$1
  shift
  rm -rf "${OUT:?}/$name" "${OUT:?}/$name.run"
  echo "training $name: preset $PRESET, $MINUTES minutes" >&2
  "$DIFFILL" train --preset "$PRESET" --max-minutes "$MINUTES" --corpus "$CORPUS" \
    --tokenizer "$TOKENIZER" --run-dir "$OUT/$name.run" --out "$OUT/$name" "$@" \
    >"$OUT/$name.log"
  "$DIFFILL" export --model "$OUT/$name" >&2
}

train blocks-16 --seq-len "$SEQ_LEN" --max-middle-tokens 64 --model-set canvas_size=16
train fixed-64 --seq-len "$SEQ_LEN" --max-middle-tokens 64 --model-set canvas_size=64
"$DIFFILL" eval --model "$OUT/blocks-16" --compare "$OUT/fixed-64" --manifest "$CORPUS" \
  --limit "$EVAL_LIMIT" --steps "$STEPS" --lengths blocks,predicted | tee "$OUT/gap_length.md"
