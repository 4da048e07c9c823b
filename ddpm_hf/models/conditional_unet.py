"""A UNet2DModel conditioned on a multi-hot label vector (several labels per image, as in i-CLEVR).

This file and the module it imports relatively (multi_hot_labels) import only torch and diffusers so that they can
travel next to a saved model (diffusers custom-component layout) and load where ddpm_hf is not installed.
"""

import torch
from diffusers import UNet2DModel
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader finds a component's loading method by looking up its base classes by name in the
# component's module (ModelMixin -> from_pretrained), so ModelMixin must be importable from here.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401

from .multi_hot_labels import MultiHotLabelsMixin


class MultiLabelUNet2DModel(MultiHotLabelsMixin, UNet2DModel):
    """
    `UNet2DModel` whose condition is a multi-hot vector over `num_labels` labels. A linear layer projects the vector
    into the time-embedding space and the sum goes where a class embedding would (diffusers' `class_embed_type =
    "identity"`), so any set of labels, including sets never seen in training, has an embedding. A row of zeros is the
    null condition of classifier-free guidance and gets its own learned embedding (`null_label_embedding`) rather than
    the projection's bias.

    Every argument of `UNet2DModel` keeps its meaning and default, except that the class embedding is fixed to this
    projection: `class_embed_type` must stay `"identity"` and `num_class_embeds` `None`.

    Args:
        num_labels (`int`, defaults to 24): Length of the multi-hot condition (i-CLEVR has 24 objects).
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int | tuple[int, int] | None = None,
        in_channels: int = 3,
        out_channels: int = 3,
        center_input_sample: bool = False,
        time_embedding_type: str = "positional",
        time_embedding_dim: int | None = None,
        freq_shift: int = 0,
        flip_sin_to_cos: bool = True,
        down_block_types: tuple[str, ...] = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        mid_block_type: str | None = "UNetMidBlock2D",
        up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        block_out_channels: tuple[int, ...] = (224, 448, 672, 896),
        layers_per_block: int = 2,
        mid_block_scale_factor: float = 1,
        downsample_padding: int = 1,
        downsample_type: str = "conv",
        upsample_type: str = "conv",
        dropout: float = 0.0,
        act_fn: str = "silu",
        attention_head_dim: int | None = 8,
        norm_num_groups: int = 32,
        attn_norm_num_groups: int | None = None,
        norm_eps: float = 1e-5,
        resnet_time_scale_shift: str = "default",
        add_attention: bool = True,
        class_embed_type: str | None = "identity",
        num_class_embeds: int | None = None,
        num_train_timesteps: int | None = None,
        num_labels: int = 24,
    ):
        if class_embed_type != "identity" or num_class_embeds is not None:
            raise ValueError(
                f"MultiLabelUNet2DModel embeds its labels itself: class_embed_type must be 'identity' and "
                f"num_class_embeds None, got {class_embed_type!r} and {num_class_embeds!r}."
            )
        if not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be an integer >= 1, got {num_labels!r}.")
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            center_input_sample=center_input_sample,
            time_embedding_type=time_embedding_type,
            time_embedding_dim=time_embedding_dim,
            freq_shift=freq_shift,
            flip_sin_to_cos=flip_sin_to_cos,
            down_block_types=down_block_types,
            mid_block_type=mid_block_type,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            mid_block_scale_factor=mid_block_scale_factor,
            downsample_padding=downsample_padding,
            downsample_type=downsample_type,
            upsample_type=upsample_type,
            dropout=dropout,
            act_fn=act_fn,
            attention_head_dim=attention_head_dim,
            norm_num_groups=norm_num_groups,
            attn_norm_num_groups=attn_norm_num_groups,
            norm_eps=norm_eps,
            resnet_time_scale_shift=resnet_time_scale_shift,
            add_attention=add_attention,
            class_embed_type="identity",
            num_class_embeds=None,
            num_train_timesteps=num_train_timesteps,
        )
        # the size UNet2DModel gives its time embedding, which the label embedding is added to
        self.init_label_embedding(num_labels, time_embedding_dim or block_out_channels[0] * 4)

    def denoise(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, labels: torch.Tensor):
        """The U-Net's output for checked multi-hot `labels`, their embedding where a class embedding would go."""
        return UNet2DModel.forward(self, sample, timestep, class_labels=self.embed_labels(labels)).sample
