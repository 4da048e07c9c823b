"""A multi-label U-Net whose cross-attention reads one token per requested label (i-CLEVR's other design).

This file and the module it imports relatively (multi_hot_labels) import only torch and diffusers so that they can
travel next to a saved model (diffusers custom-component layout) and load where ddpm_hf is not installed.
"""

import torch
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config

# diffusers' pipeline loader finds a component's loading method by looking up its base classes by name in the
# component's module (ModelMixin -> from_pretrained), so ModelMixin must be importable from here.
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .multi_hot_labels import MultiHotLabelsMixin

# The UNet2DModel block names of ddpm_hf's presets and the blocks with self- and cross-attention that replace them.
CROSS_ATTENTION_BLOCKS = {
    "AttnDownBlock2D": "CrossAttnDownBlock2D",
    "AttnUpBlock2D": "CrossAttnUpBlock2D",
    "DownBlock2D": "DownBlock2D",
    "UpBlock2D": "UpBlock2D",
}


class MultiLabelTokenUNet2DModel(MultiHotLabelsMixin, ModelMixin, ConfigMixin):
    """
    A U-Net for multi-hot conditions (several labels per image) that sees its labels twice: as one learned token per
    requested label, read by cross-attention at the attention levels, so that each place in the image can ask which
    objects are wanted; and, as in [`MultiLabelUNet2DModel`], as a linear projection of the multi-hot vector added to
    the time embedding. A row of zeros is the null condition of classifier-free guidance: it gets a learned embedding
    and leaves only the null token, which every row carries, to attend to.

    The network inside is diffusers' `UNet2DConditionModel` built from `UNet2DModel`-style arguments (the block names
    of ddpm_hf's presets, with their attention blocks swapped for cross-attention ones and `attention_head_dim`
    meaning channels per head, as in `UNet2DModel`).

    Args:
        sample_size (`int`, defaults to 32): Image side in pixels.
        in_channels (`int`, defaults to 3): Channels of the input image.
        out_channels (`int`, defaults to 3): Channels of the output.
        down_block_types (`tuple[str, ...]`): `DownBlock2D` or `AttnDownBlock2D` per level (the latter gets
            cross-attention).
        up_block_types (`tuple[str, ...]`): `UpBlock2D` or `AttnUpBlock2D` per level.
        block_out_channels (`tuple[int, ...]`, defaults to `(32, 64, 128)`): Channels per level.
        layers_per_block (`int`, defaults to 1): Residual blocks per level.
        norm_num_groups (`int`, defaults to 8): Groups of the group norms.
        attention_head_dim (`int`, defaults to 32): Channels per attention head.
        dropout (`float`, defaults to 0.0): Dropout in the residual blocks.
        cross_attention_dim (`int`, defaults to 128): Width of the label tokens.
        num_labels (`int`, defaults to 24): Length of the multi-hot condition (i-CLEVR has 24 objects).
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 32,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        block_out_channels: tuple[int, ...] = (32, 64, 128),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        attention_head_dim: int = 32,
        dropout: float = 0.0,
        cross_attention_dim: int = 128,
        num_labels: int = 24,
    ):
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be an integer >= 1, got {num_labels!r}.")
        blocks = list(down_block_types) + list(up_block_types)
        unknown = [block for block in blocks if block not in CROSS_ATTENTION_BLOCKS]
        if unknown:
            raise ValueError(f"Unknown block type(s) {unknown}; choose from {list(CROSS_ATTENTION_BLOCKS)}.")
        if len(down_block_types) != len(block_out_channels) or len(up_block_types) != len(block_out_channels):
            raise ValueError(
                f"down_block_types ({len(down_block_types)}), up_block_types ({len(up_block_types)}) and "
                f"block_out_channels ({len(block_out_channels)}) must have one entry per level."
            )
        if any(channels % attention_head_dim for channels in block_out_channels):
            raise ValueError(
                f"attention_head_dim {attention_head_dim} must divide every entry of block_out_channels "
                f"{tuple(block_out_channels)}."
            )
        time_embedding_dim = block_out_channels[0] * 4  # what UNet2DConditionModel uses
        self.unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=tuple(CROSS_ATTENTION_BLOCKS[block] for block in down_block_types),
            mid_block_type="UNetMidBlock2DCrossAttn",
            up_block_types=tuple(CROSS_ATTENTION_BLOCKS[block] for block in up_block_types),
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            dropout=dropout,
            cross_attention_dim=cross_attention_dim,
            # UNet2DConditionModel reads attention_head_dim as the number of heads (diffusers' naming)
            attention_head_dim=tuple(channels // attention_head_dim for channels in block_out_channels),
            class_embed_type="identity",
        )
        self.label_tokens = nn.Embedding(num_labels, cross_attention_dim)
        self.null_token = nn.Parameter(torch.zeros(cross_attention_dim))
        self.init_label_embedding(num_labels, time_embedding_dim)

    def encode_labels(self, class_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        The three views of each multi-hot row the U-Net reads.

        Args:
            class_labels (`torch.Tensor` of shape `(batch_size, num_labels)`): Multi-hot conditions (0/1 values).

        Returns:
            `tuple`: tokens `(batch_size, 1 + num_labels, cross_attention_dim)` (the null token, then every label's
            token), the mask of the tokens to attend to `(batch_size, 1 + num_labels)` (the null token and the
            requested labels), and the embedding added to the time embedding `(batch_size, time_embedding_dim)`.
        """
        labels = self.check_class_labels(class_labels)
        batch_size = labels.shape[0]
        tokens = torch.cat([self.null_token[None], self.label_tokens.weight], dim=0).expand(batch_size, -1, -1)
        requested = labels != 0
        mask = torch.cat([requested.new_ones(batch_size, 1), requested], dim=1)
        return tokens, mask, self.embed_labels(labels)

    def denoise(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, labels: torch.Tensor):
        """The network's output for checked multi-hot `labels`: their tokens through cross-attention, their embedding
        added to the time embedding."""
        tokens, mask, embedding = self.encode_labels(labels)
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=tokens.to(sample.dtype),
            encoder_attention_mask=mask,
            class_labels=embedding.to(sample.dtype),
        ).sample
