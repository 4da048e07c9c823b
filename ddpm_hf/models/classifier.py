"""A small convolutional image classifier: the project's own judge of conditional samples and feature network for
offline FID/KID/IS (its penultimate layer gives the features, its logits the class probabilities)."""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..pipelines.class_conditions import check_class_names


class ImageClassifier(ModelMixin, ConfigMixin):
    """
    Conv blocks (3x3 conv, GroupNorm, SiLU; stride 2 between levels), global average pooling, a `feature_dim` layer
    (the features) and a linear head (the logits). Inputs are images in [-1, 1], as the diffusion models see them.

    Args:
        in_channels (`int`, defaults to 1): 1 for greyscale, 3 for RGB.
        resolution (`int`, defaults to 32): Side of the images it was trained on; other sizes are resized to it.
        num_labels (`int`, defaults to 10): Number of classes (or of labels, for multi-label data).
        multi_label (`bool`, defaults to `False`): Independent sigmoid labels instead of one softmax class.
        block_channels (`tuple[int, ...]`, defaults to `(32, 64, 128)`): Width of each level.
        feature_dim (`int`, defaults to 128): Size of the feature vector.
        label_names (`list[str]`, *optional*): Names of the labels, in id order: `num_labels` of them, each given once
            and not empty.
        pooling (`str`, defaults to `"mean"`): How the last feature map becomes a vector: `"mean"` (global average),
            or `"mean_max"` (average and maximum side by side: small objects are not averaged away).
    """

    norm_groups = 8  # GroupNorm groups of every conv block: each width must be a multiple of it

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,
        resolution: int = 32,
        num_labels: int = 10,
        multi_label: bool = False,
        block_channels: tuple[int, ...] = (32, 64, 128),
        feature_dim: int = 128,
        label_names: list[str] | None = None,
        pooling: str = "mean",
    ):
        super().__init__()
        if pooling not in ("mean", "mean_max"):
            raise ValueError(f"pooling must be 'mean' or 'mean_max', got {pooling!r}.")
        if not block_channels or any(width < 1 or width % self.norm_groups for width in block_channels):
            raise ValueError(
                f"block_channels must be one or more widths, each a positive multiple of {self.norm_groups} (the "
                f"GroupNorm groups), got {list(block_channels)}."
            )
        for name, value in (("in_channels", in_channels), ("resolution", resolution), ("num_labels", num_labels),
                            ("feature_dim", feature_dim)):  # fmt: skip
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        if label_names is not None:
            if len(label_names) != num_labels:
                raise ValueError(
                    f"label_names holds {len(label_names)} name(s) for num_labels={num_labels}; give one per label."
                )
            check_class_names(list(label_names), "label_names")
        layers, channels = [], in_channels
        for level, width in enumerate(block_channels):
            stride = 1 if level == 0 else 2
            layers += [
                nn.Conv2d(channels, width, 3, stride=stride, padding=1),
                nn.GroupNorm(self.norm_groups, width),
                nn.SiLU(),
            ]
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(self.norm_groups, width), nn.SiLU()]
            channels = width
        self.body = nn.Sequential(*layers)
        pooled = channels * (2 if pooling == "mean_max" else 1)
        self.to_features = nn.Sequential(nn.Linear(pooled, feature_dim), nn.SiLU())
        self.head = nn.Linear(feature_dim, num_labels)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] of any size -> the trained resolution (bilinear, antialiased)."""
        size = self.config.resolution
        if images.shape[-2:] != (size, size):
            images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        return images

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] -> (N, feature_dim) penultimate features."""
        hidden = self.body(self.prepare(images))
        pooled = hidden.mean(dim=(2, 3))
        if self.config.pooling == "mean_max":
            pooled = torch.cat([pooled, hidden.amax(dim=(2, 3))], dim=1)
        return self.to_features(pooled)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] -> (N, num_labels) logits."""
        return self.head(self.features(images))
