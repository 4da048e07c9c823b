#!/usr/bin/env bash
# Fetch, here, the wheels the lent GPU machine lacks (its image has torch, accelerate, transformers, torchmetrics,
# pyarrow, pandas, huggingface_hub, but not diffusers or datasets), for Python 3.12 on x86-64, into .whl/.
# Then copy the offline MNIST beside them, so that one `run` call can carry both (".whl", "data/mnist"):
#   bash scripts/device_wheels.sh
# scripts/gpu_session.sh installs them there. Versions: the ones this project is tested with.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl diffusers==0.42.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
if [ -d ../shared/data/mnist ]; then
    mkdir -p data/mnist
    cp ../shared/data/mnist/train.npz ../shared/data/mnist/test.npz data/mnist/
fi
du -sh .whl data/mnist 2>/dev/null || true
