"""A cache of reference features, so that repeated evaluations against one dataset split skip re-extracting them."""

import hashlib
import json
import os

import torch
from safetensors.torch import load_file, save_file

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "ddpm_hf", "reference_features")


def file_fingerprint(path: str) -> str:
    """sha256 of a file's bytes (for a feature network's weights: a retrained network is another cache entry)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_tensors(key: dict, compute, cache_dir: str | None = None) -> tuple[dict[str, torch.Tensor], bool]:
    """
    The tensors `compute()` returns for `key` (a JSON-able description: dataset, split, resolution, feature network
    fingerprint, ...), from `cache_dir` when an earlier call stored them. Returns (tensors, whether from the cache).
    """
    cache_dir = cache_dir or DEFAULT_CACHE_DIR
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    path = os.path.join(cache_dir, f"{name}.safetensors")
    if os.path.isfile(path):
        return load_file(path), True
    tensors = {name: tensor.contiguous() for name, tensor in compute().items()}
    os.makedirs(cache_dir, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    save_file(tensors, temporary, metadata={"key": json.dumps(key, sort_keys=True)})
    os.replace(temporary, path)  # a half-written file never looks cached
    return tensors, False
