# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This machine kind has a local CPU wheel of exactly this version; elsewhere see README.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test lint clean

$(BIN)/diffill: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[train,dev]"
	touch $@

install: $(BIN)/diffill

demo: install
	$(BIN)/diffill complete examples/demo.py --line 7 --col 11

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
