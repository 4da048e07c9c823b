#!/usr/bin/env bash
# For a CUDA machine without network access whose Python 3.12 image has torch, accelerate, transformers (which needs
# huggingface_hub < 2, so the image's own huggingface_hub is kept), torchmetrics, pyarrow, pandas and pytest, but not
# diffusers, datasets or gradio: fetch those and what they need beyond the image into .whl/ (x86-64 wheels), and MNIST
# as data/mnist/{train,test}.npz (docs/MNIST.md), to copy there beside the repository:
#   bash scripts/device_wheels.sh
# scripts/gpu_session.sh installs the wheels there. Versions: the ones this project is tested with.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    diffusers==0.42.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 httpx2==2.16.2 httpcore2==2.16.2 \
    truststore==0.10.5 gradio==6.31.0 gradio_client==2.7.2 hf-gradio==0.4.1 fastapi==0.165.0 starlette==1.10.0 \
    pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 \
    opentelemetry-api==1.45.2 importlib_metadata==10.2.0 uvicorn==0.55.0 orjson==3.13.0 python-multipart==0.0.34 \
    safehttpx==0.1.7 groovy==0.1.2 brotli==1.2.1 semantic-version==2.10.0 tomlkit==0.14.0 pydub==0.25.1 pytz==2026.6
if [ ! -f data/mnist/test.npz ]; then
    mkdir -p data/mnist
    python3 -c "import datasets, numpy as np; [np.savez_compressed(f'data/mnist/{s}.npz', images=np.stack([np.asarray(i) for i in d['image']]), labels=np.array(d['label']), label_names=np.array([str(n) for n in range(10)])) for s in ('train', 'test') for d in [datasets.load_dataset('ylecun/mnist', split=s)]]"
fi
du -sh .whl data/mnist 2>/dev/null || true
