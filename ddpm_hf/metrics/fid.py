"""FID, KID and Inception Score from features, computed by torchmetrics; and the feature networks that give them.

The features come from a network run by the caller (`extract_features`), so that the features of a reference split
can be computed once and cached (`ddpm_hf.metrics.reference_cache`). Two kinds of feature network:

- the project's own `ImageClassifier` (trained by train_scripts/train_classifier.py): penultimate features for
  FID/KID, logits for IS; works offline;
- the standard Inception-v3 of FID papers, torch-fidelity's port (`inception_feature_network`): 2048-d pool features
  for FID/KID and its 1008 class logits for IS; the weights download on first use, or come from a local file.
"""

import os
import pickle

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
    Features and class logits of `images` (N, C, H, W) in [0, 1] (what pipelines return with `output_type="pt"`).

    Args:
        network (`ImageClassifier` or `nn.Module`): An `ImageClassifier` (features: its penultimate layer; logits: its
            head), whose channels the images must have; or the network of `inception_feature_network` (features:
            2048-d pool features; logits: its 1008 ImageNet logits), which takes greyscale images as three equal
            channels, as FID on greyscale data is usually computed.
        images (`torch.Tensor`): The images, in [0, 1].
        batch_size (`int`, defaults to 256): Images per forward pass.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: float64 features (N, d) and logits (N, K).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}.")
    if isinstance(network, ImageClassifier) and images.shape[1] != network.config.in_channels:
        raise ValueError(
            f"The images have {images.shape[1]} channel(s) and the classifier takes {network.config.in_channels}; "
            "score images of the data the classifier was trained on."
        )
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].float()
        if isinstance(network, ImageClassifier):
            hidden = network.features(batch.to(network.device) * 2 - 1)
            batch_features, batch_logits = hidden, network.head(hidden)
        else:  # Inception: uint8 RGB in
            batch = (batch * 255).round().to(torch.uint8).to(next(network.parameters()).device)
            batch_features, batch_logits = network(batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch)
        features.append(batch_features.double().cpu())
        logits.append(batch_logits.double().cpu())
    return torch.cat(features), torch.cat(logits)


INCEPTION_INSTALL = 'pip install "ddpm-hf[inception]" (or: pip install torch-fidelity torchvision)'


def inception_weights_cache_path(url: str) -> str:
    """Where torch.hub, and so torch-fidelity, keeps a downloaded weights file: $TORCH_HOME/hub/checkpoints/NAME."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def inception_feature_network(weights_path: str | None = None) -> nn.Module:
    """
    The Inception-v3 of FID papers (torch-fidelity's `inception-v3-compat` port of the TensorFlow graph), in eval
    mode. Called on uint8 RGB images (N, 3, H, W) of any size, it returns the 2048-d pool features (FID, KID) and the
    1008 class logits without bias (`logits_unbiased`, what torch-fidelity and torchmetrics compute IS from).

    Args:
        weights_path (`str`, *optional*): A local copy of torch-fidelity's weights file
            (`weights-inception-2015-12-05-6726825d.pth`). Without it torch-fidelity reads torch.hub's cache
            (`$TORCH_HOME/hub/checkpoints/`, by default under `~/.cache/torch`) and downloads the file there if it is
            missing.

    Raises:
        `ImportError`: torch-fidelity (or the torchvision it imports) is missing or broken; the message says what to
            install.
        `RuntimeError`: the weights could not be had (offline without a local copy) or are not Inception weights; the
            message says where to put them.
    """
    if weights_path is not None and not os.path.isfile(weights_path):
        raise ValueError(f"Inception weights file {weights_path!r} does not exist.")
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3
    except ImportError as error:
        raise ImportError(
            f"Inception-v3 features need torch-fidelity and torchvision: {INCEPTION_INSTALL}. Offline, or without "
            "them, use the project's own feature network: train_scripts/train_classifier.py, then --feature_network "
            f"PATH. ({error})"
        ) from error
    except RuntimeError as error:  # torchvision built for another torch fails while registering its operators
        raise ImportError(
            f"torch-fidelity is installed but does not import ({error}); usually torchvision was built for another "
            f"torch: install the torchvision release that matches your torch. {INCEPTION_INSTALL}."
        ) from error
    cached = inception_weights_cache_path(URL_INCEPTION_V3)
    try:
        network = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=weights_path
        )
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as error:
        source = weights_path or (cached if os.path.isfile(cached) else None)
        if source is not None:
            raise RuntimeError(
                f"{source!r} does not hold torch-fidelity's Inception-v3 weights ({error}); download "
                f"{URL_INCEPTION_V3} again."
            ) from error
        raise RuntimeError(
            f"Could not get the Inception-v3 weights ({error}). Without network access, download {URL_INCEPTION_V3} "
            f"on a machine that has it, then either pass the file with --inception_weights FILE "
            f"(inception_feature_network(weights_path=FILE)), or copy it to {cached} (torch.hub's cache, which "
            "torch-fidelity reads before downloading; TORCH_HOME moves it). Or use the project's own feature network "
            "(train_scripts/train_classifier.py, then --feature_network PATH)."
        ) from error
    return network.eval()
