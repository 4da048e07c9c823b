"""DDPMCFGPipeline in bfloat16 and float16 on the CPU: 50 strided DDPM steps of an exact model land on the data, as in
float32, for every prediction type.

The model is exact for data that is one fixed image x0*: it returns the true epsilon, x0, v or posterior mean of
x_t, computed in float64 and rounded to the run's dtype. Sampling it must end at x0* whatever the dtype; in a half
dtype the final image differs from the float32 one only by rounding: x0 rounded to the dtype, halved into [0, 1], then
x / 2 + 0.5 rounded once more.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_2d import UNet2DOutput

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devices import TEST_DEVICE  # noqa: E402
from reference_targets import exact_model_output  # noqa: E402

T, STEPS, SIZE = 1000, 50, 8


def alphas_cumprod64():
    return np.cumprod(1 - np.linspace(1e-4, 0.02, T))  # the linear schedule, in float64


class ExactPointMassUNet(ModelMixin, ConfigMixin):
    """The exact denoiser of a one-image dataset, for a given prediction type (class labels are ignored)."""

    @register_to_config
    def __init__(
        self,
        prediction_type: str = "epsilon",
        sample_size: int = SIZE,
        in_channels: int = 1,
        num_class_embeds: int | None = None,
    ):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a dtype
        grid = torch.linspace(-0.8, 0.8, sample_size, dtype=torch.float64)
        # plain float64 attributes, not buffers: .to(dtype) must not round the data or the schedule
        self.clean = (grid[:, None] * grid.flip(0)[None, :]).expand(in_channels, -1, -1).clone()
        self.alphas_cumprod = alphas_cumprod64()

    def forward(self, sample, timestep, class_labels=None):
        t = torch.as_tensor(timestep).long().flatten()[0].item()
        alpha_bar = float(self.alphas_cumprod[t])
        alpha_bar_prev = float(self.alphas_cumprod[t - 1]) if t > 0 else 1.0
        x_t, x0 = sample.double(), self.clean.to(sample.device).expand_as(sample)
        output = exact_model_output(self.config.prediction_type, x0, x_t, alpha_bar, alpha_bar_prev)
        return UNet2DOutput(sample=output.to(sample.dtype))


def sample(prediction_type, dtype):
    unet = ExactPointMassUNet(prediction_type).to(TEST_DEVICE, dtype)
    pipe = DDPMCFGPipeline(unet=unet, scheduler=ExtendedDDPMScheduler(prediction_type=prediction_type))
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        batch_size=4, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0), output_type="pt"
    )
    assert images.images.device.type == TEST_DEVICE.type
    return images.images.float().cpu(), (unet.clean.float() / 2 + 0.5).expand(4, -1, -1, -1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction", "mean"])
def test_half_precision_sampling_lands_where_float32_does(prediction_type, dtype):
    full, data = sample(prediction_type, torch.float32)
    half, _ = sample(prediction_type, dtype)
    torch.testing.assert_close(full, data, rtol=0, atol=1e-4)  # the exact model's samples are the data
    assert torch.isfinite(half).all()
    # x0 rounded (|x0| < 1: at most eps / 4), halved (eps / 8), then x / 2 + 0.5 in [0, 1) rounded (eps / 4)
    bound = 3 / 8 * torch.finfo(dtype).eps
    difference = (half - full).abs()
    assert difference.max().item() <= bound + 1e-4, (difference.max().item(), difference.mean().item())
