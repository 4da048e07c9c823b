"""Folders written by plain diffusers, as users find them on the Hub (`google/ddpm-*` layout), for the tests that
load, fine-tune or score them."""

import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

TINY_UNET_CONFIG = dict(
    sample_size=8,
    in_channels=1,
    out_channels=1,
    block_out_channels=(8, 16),
    norm_num_groups=4,
    down_block_types=("DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D"),
)


def save_diffusers_ddpm_folder(folder, scheduler=None, seed=0, **unet_changes):
    """Save a `DDPMPipeline` of a tiny seeded `UNet2DModel` (8x8 greyscale, with `unet_changes` to its config) and
    `scheduler` (default: `DDPMScheduler` with T = 20) with diffusers' own `save_pretrained`.
    Returns (folder as str, the U-Net in eval mode)."""
    torch.manual_seed(seed)
    unet = UNet2DModel(**{**TINY_UNET_CONFIG, **unet_changes})
    DDPMPipeline(unet=unet, scheduler=scheduler or DDPMScheduler(num_train_timesteps=20)).save_pretrained(folder)
    return str(folder), unet.eval()
