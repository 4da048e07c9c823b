"""The device that device-aware tests run on: DDPM_HF_TEST_DEVICE (default cpu), e.g. `DDPM_HF_TEST_DEVICE=cuda
bash scripts/test.sh tests/schedulers tests/pipelines` on a GPU machine. CI has no GPU and runs them on the CPU."""

import os

import torch

TEST_DEVICE = torch.device(os.environ.get("DDPM_HF_TEST_DEVICE", "cpu"))
if TEST_DEVICE.type == "cuda" and not torch.cuda.is_available():
    raise RuntimeError(f"DDPM_HF_TEST_DEVICE={TEST_DEVICE}, but torch sees no CUDA device; unset it for the CPU.")
ON_CUDA = TEST_DEVICE.type == "cuda"
