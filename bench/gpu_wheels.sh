#!/usr/bin/env bash
# Download the wheels bench/bench_gpu.py needs on a GPU machine that cannot reach a package registry into .whl/.
#
# The device machine of this workplace (docs/gpu.md) has Python 3.12 on x86-64 with PyTorch, transformers and
# tokenizers, but not tree-sitter, which codescaler's code extraction imports. These two wheels (under 1 MB, no
# dependencies of their own) travel with the `run` call (carry: [".whl"]) and are installed there into /tmp/site.
# The versions are the ones the test suite runs with, inside pyproject.toml's ranges.
#
#     bash bench/gpu_wheels.sh                      # uses python3's pip; PYTHON=.venv/bin/python to pick another
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"

rm -rf .whl
"${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl tree-sitter==0.26.1 tree-sitter-python==0.25.0
ls -l .whl
