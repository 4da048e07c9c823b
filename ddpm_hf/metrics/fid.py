"""FID, KID and Inception Score from features, computed by torchmetrics; and the feature networks that give them.

The features come from a network run by the caller (`extract_features`), so that the features of a reference split
can be computed once and cached (`ddpm_hf.metrics.reference_cache`). Two kinds of feature network:

- the project's own `ImageClassifier` (trained by train_scripts/train_classifier.py): penultimate features for
  FID/KID, logits for IS; works offline;
- the standard Inception-v3 of FID papers, through torchmetrics and torch-fidelity (`inception_feature_network`),
  whose weights download on first use.
"""

import torch
from torch import nn

from ..models.classifier import ImageClassifier


class _Precomputed(nn.Module):
    """Hands torchmetrics features that were already extracted."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _torchmetrics_image():
    """torchmetrics' FID, KID and IS classes (imported from their modules: with a custom feature network they need
    no torch-fidelity)."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as error:
        raise ImportError("FID, KID and IS need torchmetrics: pip install torchmetrics") from error
    return FrechetInceptionDistance, KernelInceptionDistance, InceptionScore


def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """FID between two feature sets (N, d), by torchmetrics' `FrechetInceptionDistance` in float64."""
    fid_class, _, _ = _torchmetrics_image()
    metric = fid_class(feature=_Precomputed(real_features.shape[1]))
    metric.update(real_features.double(), real=True)
    metric.update(fake_features.double(), real=False)
    return float(metric.compute())


def kernel_distance(real_features, fake_features, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """KID (mean, std over random subsets) by torchmetrics' `KernelInceptionDistance`, with a fixed seed."""
    _, kid_class, _ = _torchmetrics_image()
    subset_size = min(subset_size, len(real_features), len(fake_features))
    metric = kid_class(feature=_Precomputed(real_features.shape[1]), subsets=subsets, subset_size=subset_size)
    metric.update(real_features.double(), real=True)
    metric.update(fake_features.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """IS (mean, std over splits) from class logits (N, K), by torchmetrics' `InceptionScore`, with a fixed seed."""
    _, _, inception_score_class = _torchmetrics_image()
    metric = inception_score_class(feature=_Precomputed(logits.shape[1]), splits=splits)
    metric.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


@torch.no_grad()
def extract_features(network, images: torch.Tensor, batch_size: int = 256):
    """
    Features and logits of `images` (N, C, H, W) in [0, 1] (what pipelines return with `output_type="pt"`).

    `network` is an `ImageClassifier` (features: its penultimate layer; logits: its head) or the module of
    `inception_feature_network` (features: 2048-d pool features; logits: None).
    """
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].float()
        if isinstance(network, ImageClassifier):
            batch = batch.to(network.device) * 2 - 1
            if batch.shape[1] != network.config.in_channels:
                batch = (
                    batch.mean(dim=1, keepdim=True)
                    if network.config.in_channels == 1
                    else batch.expand(-1, network.config.in_channels, -1, -1)
                )
            hidden = network.features(batch)
            features.append(hidden.double().cpu())
            logits.append(network.head(hidden).double().cpu())
        else:  # Inception: uint8 RGB in, pool features out; no logits (IS comes from the project classifier)
            batch = (batch * 255).round().to(torch.uint8).to(next(network.parameters()).device)
            batch = batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch
            features.append(network(batch).double().cpu())
    return torch.cat(features), (torch.cat(logits) if logits else None)


def inception_feature_network(weights_path: str | None = None) -> nn.Module:
    """
    The Inception-v3 of FID papers (torch-fidelity's port via torchmetrics), returning 2048-d pool features.

    Args:
        weights_path (`str`, *optional*): A local copy of the weights (torch-fidelity's
            `weights-inception-2015-12-05-6726825d.pth`); without it they download on first use.
    """
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as error:
        raise ImportError("Inception features need torchmetrics: pip install torchmetrics") from error
    try:
        network = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=weights_path
        )
    except ModuleNotFoundError as error:
        raise ImportError(
            "Inception features need torch-fidelity (and torchvision): pip install torch-fidelity. Offline, or "
            "without it, use the project's own feature network: train_scripts/train_classifier.py, then "
            "--feature_network PATH."
        ) from error
    except Exception as error:  # the weights download failed
        raise RuntimeError(
            f"Could not load the Inception weights ({error}). Without network access, download "
            "weights-inception-2015-12-05-6726825d.pth elsewhere and pass its path (--inception_weights PATH), or use "
            "the project's own feature network (--feature_network PATH)."
        ) from error
    return network.eval()
