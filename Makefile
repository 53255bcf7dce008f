# Everything a fresh machine (Debian 12, Python 3.11, gcc) needs, in two commands:
#   make run    create .venv, install everything, run the default pipeline -> reports/
#   make test   install the test tools and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test repro lint clean
comma := ,

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel "setuptools<82"

# llama-cpp-python compiles llama.cpp from source: 4 to 12 minutes on 2 cores, once.
# For AVX2, not for the build machine's own CPU: llama.cpp's native build segfaults on
# the first long prompt on Xeons with AMX (seen here), and a portable build runs on any
# x86-64 CPU of the last decade. Set CMAKE_ARGS yourself to build otherwise.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export CMAKE_ARGS
# pip's wheel cache is keyed by the source archive, not by CMAKE_ARGS: a wheel compiled
# earlier with other flags (a native build, say) would be reused silently. So llama.cpp
# is always compiled here, with the flags above, before the rest is installed.
LLAMA_REQUIREMENT := $(shell grep -o '"llama-cpp-python[^"]*"' pyproject.toml)
$(VENV)/.llama: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-cache-dir $(LLAMA_REQUIREMENT)
	touch $@

# BALROG's MiniHack is minihack 0.1.6, which pins `nle`; BALROG's NLE fork (balrog-nle,
# in pyproject.toml) provides that module, so minihack goes in without its dependencies.
# Both NLE and balrog-nle install the module `nle`: an NLE left by an earlier version of
# this project is removed first.
MINIHACK := minihack==0.1.6
define install_project
	$(BIN)/pip uninstall --quiet --yes nle minihack 2>/dev/null || true
	$(BIN)/pip install --quiet -e ".[$(1)]"
	$(BIN)/pip install --quiet --no-deps $(MINIHACK)
endef

$(VENV)/.run-deps: pyproject.toml $(VENV)/.llama
	$(call install_project,local$(comma)pipeline$(comma)api)
	touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.llama
	$(call install_project,test)
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	snakemake --cores all

repro: $(VENV)/.run-deps
	dvc repro

test: $(VENV)/.test-deps
	pytest

lint: $(VENV)/.test-deps
	ruff check src tests bench
	snakemake --lint

clean:
	rm -rf results logs reports/tables reports/figures reports/metrics.json .snakemake
