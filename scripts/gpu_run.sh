#!/usr/bin/env bash
# The whole GPU training run (issue 8) in one command, for a lent H200 or any CUDA machine:
#   1. use the machine's python (torch is preinstalled there; nothing can be downloaded),
#   2. build the corpus from that machine's own files: installed Python packages, C/C++
#      headers, npm packages' JavaScript/TypeScript, shell scripts (LANGUAGES),
#   3. train a tokenizer on a TOKENIZER_MB sample of it (0: keep the shipped tokenizer),
#   4. train the `gpu` preset in bf16 for MAX_MINUTES,
#   5. evaluate held-out exact match with `diffill eval`, both modes and both gap lengths,
#   6. leave the model (config, shards <= 16 MB, index, tokenizer), the training log and the
#      eval in $OUT. The device tool brings back at most 8 files: a model of up to 32 MB
#      (two shards) leaves exactly 8.
#
# Proof on a CPU:  PRESET=tiny MAX_MINUTES=0.5 EVAL_LIMIT=1 TOKENIZER_MB=2 scripts/gpu_run.sh
# On the H200:     OUT=$OUT scripts/gpu_run.sh   (the device tool stops a command at 600 s, so
#                  training gets MAX_MINUTES or whatever DEADLINE_S leaves after the corpus,
#                  keeping RESERVE_S for start-up, the final save and the evaluation)
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
PRESET=${PRESET:-gpu}
MAX_MINUTES=${MAX_MINUTES:-8}
DEADLINE_S=${DEADLINE_S:-570}  # the whole script, from its start
RESERVE_S=${RESERVE_S:-120}
EVAL_LIMIT=${EVAL_LIMIT:-20}  # held-out examples per span kind and language
LANGUAGES=${LANGUAGES:-python,c,cpp,javascript,typescript,shell}
TOKENIZER_MB=${TOKENIZER_MB:-24}
COMPILE=${COMPILE:-0}  # 1: torch.compile the model (a minute of compiling, faster steps)
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}  # only installed when torch is missing
WORK=${WORK:-runs/gpu_run}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT" "$WORK"
LOG="$OUT/gpu_run.log"
: >"$LOG"

say() { echo "[gpu_run $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
run() { say "\$ $*"; "$@" 2>&1 | tee -a "$LOG"; }

pick_python() {
  for candidate in "${PYTHON:-}" python3 python; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null; then
      if "$candidate" -c "import torch" 2>/dev/null; then echo "$candidate"; return; fi
    fi
  done
  command -v python3 || command -v python
}

PY=$(pick_python)
if ! "$PY" -c "import torch" 2>/dev/null; then
  say "torch is missing: installing $TORCH_SPEC"
  run "$PY" -m pip install --quiet "$TORCH_SPEC"
fi
# The project itself, from this tree, without fetching anything: its training needs (torch,
# numpy, tokenizers, safetensors) are on the machine; if pip cannot install, run from source.
if "$PY" -m pip show diffill >/dev/null 2>&1; then
  say "diffill is already installed for $PY"
elif ! "$PY" -m pip install --quiet --no-deps --no-build-isolation --no-index -e . >>"$LOG" 2>&1; then
  say "pip could not install the project; running it from the source tree"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
run "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"

run "$PY" -m diffill corpus --languages "$LANGUAGES" --out "$WORK/corpus.json"
tokenizer=models/tokenizer.json
if [ "$TOKENIZER_MB" != 0 ]; then
  tokenizer="$WORK/tokenizer.json"
  run "$PY" -m diffill tokenizer --corpus "$WORK/corpus.json" --max-mb "$TOKENIZER_MB" \
    --out "$tokenizer"
fi

minutes=$(awk -v m="$MAX_MINUTES" -v left="$((DEADLINE_S - SECONDS - RESERVE_S))" \
  'BEGIN { t = left / 60; if (t > m) t = m; if (t < 0.5) t = 0.5; printf "%.2f", t }')
say "training for $minutes minutes (MAX_MINUTES $MAX_MINUTES, ${SECONDS}s used of ${DEADLINE_S}s)"
compile_flag=--no-compile
[ "$COMPILE" = 1 ] && compile_flag=--compile
rm -rf "$WORK/run" "$WORK/model"
run "$PY" -m diffill train --preset "$PRESET" --max-minutes "$minutes" "$compile_flag" \
  --corpus "$WORK/corpus.json" --tokenizer "$tokenizer" \
  --run-dir "$WORK/run" --out "$WORK/model"

device=cpu
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" && device=cuda
say "\$ diffill eval (device $device) > $OUT/eval.json"
"$PY" -m diffill eval --model "$WORK/model" --runtime torch --device "$device" \
  --manifest "$WORK/corpus.json" --limit "$EVAL_LIMIT" --lengths blocks,predicted --json \
  >"$OUT/eval.json" 2>>"$LOG"

cp "$WORK/model/config.json" "$WORK/model/model.safetensors.index.json" "$WORK"/model/model-*.safetensors \
  "$WORK/model/tokenizer.json" "$WORK/run/log.jsonl" "$OUT/"
say "done: $(ls "$OUT" | tr '\n' ' ')"
