# `make demo` and `make test` work on a fresh clone: they build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned so that pip takes the CPU wheel on disk instead of a multi-GB CUDA build.
TORCH := torch==2.13.0
# pytest-xdist workers (one torch thread each, tests/conftest.py): `auto` is one per core.
WORKERS ?= auto

.PHONY: venv demo test test-slow bench clean

$(BIN)/srlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/srlab

venv: $(BIN)/srlab

demo: venv
	$(BIN)/srlab demo --out out/demo

test: venv
	$(BIN)/python -m pytest -q -n $(WORKERS)

test-slow: venv
	$(BIN)/python -m pytest -q -m slow -n $(WORKERS)

bench: venv
	$(BIN)/python bench/bench_resize.py

clean:
	rm -rf $(VENV) out runs
