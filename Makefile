# Two entry points (README): `make demo` and `make test`. Both create or reuse .venv with the
# full pinned stack, Horovod included; a second install is a no-op (stamp file).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
HOROVOD_ENV := HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
	HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS=-j$(shell nproc)
export PATH := $(BIN):$(PATH)

.PHONY: install demo test lint report clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "need Python 3.11, found " + sys.version' \
		|| { echo "set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77,<81' wheel
	$(PY) -m pip install -q -e '.[dev]'
	# Horovod: a source build against the installed TensorFlow (needs cmake<4, no isolation).
	$(PY) -c 'import horovod.tensorflow' 2>/dev/null \
		|| $(HOROVOD_ENV) $(PY) -m pip install -q --no-build-isolation 'horovod==0.28.1'
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	$(BIN)/snakemake --cores 2
	$(BIN)/snakemake --cores 2 --report results/report.html

lint: install
	$(BIN)/snakemake --lint --cores 1
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q --durations=15
