#!/usr/bin/env bash
# For a CUDA machine without network access whose image has torch, accelerate, transformers, torchmetrics, pyarrow,
# pandas and huggingface_hub but not diffusers or datasets: fetch their wheels (Python 3.12, x86-64) into .whl/, and
# MNIST as data/mnist/{train,test}.npz (docs/MNIST.md), to copy there beside the repository:
#   bash scripts/device_wheels.sh
# scripts/gpu_session.sh installs the wheels there. Versions: the ones this project is tested with.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl diffusers==0.42.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
if [ ! -f data/mnist/test.npz ]; then
    mkdir -p data/mnist
    python3 -c "import datasets, numpy as np; [np.savez_compressed(f'data/mnist/{s}.npz', images=np.stack([np.asarray(i) for i in d['image']]), labels=np.array(d['label']), label_names=np.array([str(n) for n in range(10)])) for s in ('train', 'test') for d in [datasets.load_dataset('ylecun/mnist', split=s)]]"
fi
du -sh .whl data/mnist 2>/dev/null || true
