"""UNet2DModel sizes, from a CPU-friendly toy to the DDPM paper's CIFAR-10 network."""

from diffusers import UNet2DModel

from .conditional_unet import MultiLabelUNet2DModel
from .label_token_unet import MultiLabelTokenUNet2DModel

LABEL_CONDITIONINGS = ("projection", "tokens")

UNET_PRESETS = {
    # ~0.18M parameters: the 8x8 digits of the CPU main job. A quarter of `tiny`'s weights at half its width, so a
    # training step costs about a third of `tiny`'s on a 2-core CPU (convolutions are most of a step there).
    "micro": {
        "block_out_channels": (16, 32),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "attention_head_dim": 16,
    },
    # ~0.5M parameters: the CPU digits demo at 16x16.
    "tiny": {
        "block_out_channels": (32, 64),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "attention_head_dim": 16,
    },
    # ~2.7M parameters: three levels, attention only at the lowest (8x8 at 32 px). As fast per step as `tiny` on a
    # 2-core CPU at 32x32 (attention over 64 positions instead of 256), with four times the weights and a receptive
    # field that spans the image: the CPU stand-in for multi-object scenes.
    "compact": {
        "block_out_channels": (32, 64, 128),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "attention_head_dim": 32,
    },
    # MNIST-sized: 28/32 px.
    "small": {
        "block_out_channels": (64, 128, 128),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "attention_head_dim": 32,
    },
    # 64x64 faces / animals.
    "base": {
        "block_out_channels": (64, 128, 256, 256),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "attention_head_dim": 64,
    },
    # Ho et al. 2020, CIFAR-10: channels 128 x (1, 2, 2, 2), 2 res blocks per level, attention at 16x16, dropout 0.1.
    "ddpm_cifar10": {
        "block_out_channels": (128, 256, 256, 256),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "attention_head_dim": None,
        "dropout": 0.1,
    },
}


def check_resolution(preset: str, resolution: int) -> None:
    """Every down block but the last halves the size, so `resolution` must be divisible by 2 ** (levels - 1)."""
    if preset not in UNET_PRESETS:
        raise ValueError(f"Unknown model preset {preset!r}; choose one of {list(UNET_PRESETS)}.")
    factor = 2 ** (len(UNET_PRESETS[preset]["block_out_channels"]) - 1)
    if resolution < factor or resolution % factor:
        raise ValueError(
            f"resolution {resolution} does not fit the {preset!r} U-Net: it has "
            f"{len(UNET_PRESETS[preset]['block_out_channels'])} levels, so the resolution must be a multiple of "
            f"{factor} (e.g. {max(factor, resolution // factor * factor)} or {(resolution // factor + 1) * factor})."
        )


def make_unet(
    preset: str,
    resolution: int,
    channels: int,
    num_classes: int | None = None,
    multi_label: bool = False,
    label_conditioning: str = "projection",
) -> UNet2DModel | MultiLabelTokenUNet2DModel:
    """
    Build a `UNet2DModel` of a preset size.

    Args:
        preset (`str`): One of `micro`, `tiny`, `compact`, `small`, `base`, `ddpm_cifar10`.
        resolution (`int`): Image side in pixels.
        channels (`int`): 1 for greyscale, 3 for RGB; input and output alike.
        num_classes (`int`, *optional*): For a class-conditional model, the number of real classes K. The class
            embedding then has K + 1 rows: id K is the null condition used for classifier-free guidance.
        multi_label (`bool`, defaults to `False`): Condition on a multi-hot vector over the `num_classes` labels
            instead (a row of zeros is the null condition).
        label_conditioning (`str`, defaults to `"projection"`): How a multi-label model reads its labels:
            `"projection"` adds a linear projection of the multi-hot vector to the time embedding
            ([`MultiLabelUNet2DModel`]); `"tokens"` does that too and lets the preset's attention levels cross-attend
            to one token per requested label ([`MultiLabelTokenUNet2DModel`]).
    """
    check_resolution(preset, resolution)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels}.")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if label_conditioning not in LABEL_CONDITIONINGS:
        raise ValueError(
            f"Unknown label_conditioning {label_conditioning!r}; choose one of {list(LABEL_CONDITIONINGS)}."
        )
    if label_conditioning == "tokens" and not multi_label:
        raise ValueError("label_conditioning='tokens' is for multi-label models (multi_label=True).")
    if multi_label:
        if num_classes is None:
            raise ValueError("A multi-label model needs num_classes, the number of labels.")
        if label_conditioning == "tokens":
            settings = dict(UNET_PRESETS[preset])
            if settings.get("attention_head_dim") is None:  # UNet2DModel's one head per level; here a width all divide
                settings["attention_head_dim"] = settings["block_out_channels"][0]
            return MultiLabelTokenUNet2DModel(
                sample_size=resolution,
                in_channels=channels,
                out_channels=channels,
                num_labels=num_classes,
                cross_attention_dim=settings["block_out_channels"][-1],
                **settings,
            )
        return MultiLabelUNet2DModel(
            sample_size=resolution,
            in_channels=channels,
            out_channels=channels,
            num_labels=num_classes,
            **UNET_PRESETS[preset],
        )
    return UNet2DModel(
        sample_size=resolution,
        in_channels=channels,
        out_channels=channels,
        num_class_embeds=None if num_classes is None else num_classes + 1,
        **UNET_PRESETS[preset],
    )
